"""Ray topology and entry points.

Placement groups, actor groups, the driver loop, configuration and the `conrec` command line
(including `conrec doctor`, the environment check). Everything a user launches starts here.
"""
