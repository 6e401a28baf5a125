"""Why a placement cannot be met, from the nodes' totals and the strategy (hand-checked cases)."""

from cluster.placement import unmet

B = {"CPU": 1.0}


def test_totals_short_names_the_resource():
    assert unmet([B] * 5, "PACK", [{"CPU": 2.0}, {"CPU": 2.0}]) == "CPU: needs 5 in all, the cluster has 4"
    gpu = {"CPU": 1.0, "GPU": 1.0}
    assert unmet([gpu] * 2, "SPREAD", [{"CPU": 8.0}]) == "GPU: needs 2 in all, the cluster has 0"


def test_strict_spread_needs_a_node_per_bundle():
    nodes = [{"CPU": 4.0}, {"CPU": 4.0}, {"CPU": 0.5}]
    assert unmet([B] * 3, "STRICT_SPREAD", nodes) == ("STRICT_SPREAD needs 3 nodes with CPU 1 each (one per "
                                                      "bundle); 2 of the 3 alive nodes have it")
    assert unmet([B] * 2, "STRICT_SPREAD", nodes) == ""
    assert unmet([B] * 3, "SPREAD", nodes) == ""  # best effort: several bundles may share a node


def test_strict_pack_needs_one_node_for_all():
    nodes = [{"CPU": 2.0}, {"CPU": 3.0}]
    assert unmet([B] * 4, "STRICT_PACK", nodes) == "STRICT_PACK needs one node with CPU 4; the largest has CPU 3"
    assert unmet([B] * 3, "STRICT_PACK", nodes) == ""
    assert unmet([B] * 4, "PACK", nodes) == ""
