"""The bottom layer: helpers every package may import (atomic writes, configs, fault injection, statistics,
ports). It imports no other package of the project."""
