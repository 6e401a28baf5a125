"""An example reward plug-in in verl's contract, for `reward.terms`:

    reward.terms=[{name: future_sim}, {name: examples/first_level_reward.py:compute_score, weight: 0.2}]

It pays 1 when the generated SID's first token (its coarsest semantic cluster) is the first token of
any ground-truth item, and logs how many GTS items share it.
"""


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    first = solution_str.split(">")[0] + ">"
    shared = sum(1 for s in ground_truth["gts"] if s.startswith(first))
    return {"score": 1.0 if shared else 0.0, "shared_first_level": shared}
