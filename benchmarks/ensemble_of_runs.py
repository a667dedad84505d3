"""Separators trained apart, averaged: how much of one run's error is its own?

Loads trained model files of one query bank (lever runs of ``train_supervised``, say), joins them
into one ``MaskEnsemble`` (each member keeps its calibrated mask temperature; a run that is itself
an ensemble gives each of its U-Nets; the ensemble averages their logits) and compares it pair by
pair with the first model (ensemble minus first, mean ± s.e.) on the test pairs and the
cross-source set, for text and audio queries. With ``--soup`` it also scores the average of the
members' *weights* (one network; one-U-Net runs only), which only works for members that share a
basin. ``--members`` keeps only some U-Nets of each run (one index per model; ``all``: every one),
e.g. the default's first U-Net with another run's first: a two-U-Net ensemble whose members
learned apart, at the default's serving cost.

    python benchmarks/ensemble_of_runs.py --models models/separator_sup.pt /tmp/lever_eq/separator_sup.pt \\
        --out benchmarks/results/ensemble_of_runs/default_eq.json
    python benchmarks/ensemble_of_runs.py --models models/separator_sup.pt /tmp/lever_mel160/separator_T12.pt \\
        --members 0 0 --out benchmarks/results/ensemble_of_runs/hybrid_mel160_unet0.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import torch
from paired_delta import compare_variants  # benchmarks/, the script's folder

from marssep_core.separation.model import MaskEnsemble, MaskUNet
from marssep_core.separation.separator import Separator, load_separator


def member_networks(separator: Separator) -> list[MaskUNet]:
    """``separator``'s U-Nets, each set to the temperature the separator applies to it (an
    ensemble's members run at 1 and the ensemble divides their mean; equal member counts make
    the flattened mean the mean of the runs' logits)."""
    net = copy.deepcopy(separator.mask_net)  # the baseline keeps scoring its own, unchanged
    if isinstance(net, MaskEnsemble):
        for member in net.members:
            member.cfg = dataclasses.replace(member.cfg, temperature=net.cfg.temperature)
        return list(net.members)
    return [net]


def ensemble_of(separators: list[Separator], members: list[str] | None = None) -> Separator:
    """One ``Separator`` whose mask averages the logits of every U-Net of ``separators`` (a
    two-U-Net run gives two), each at its run's temperature; ``members`` (one per separator, an
    index or ``"all"``) keeps only that U-Net of a run."""
    picks = members or ["all"] * len(separators)
    if len(picks) != len(separators):
        raise ValueError(f"--members needs one entry per model ({len(separators)}), got {len(picks)}")
    networks = []
    for separator, pick in zip(separators, picks):
        own = member_networks(separator)
        if pick != "all" and not (pick.isdigit() and int(pick) < len(own)):
            raise ValueError(f"--members {pick!r}: a run of {len(own)} U-Net(s) has indices 0..{len(own) - 1} or 'all'")
        networks += own if pick == "all" else [own[int(pick)]]
    # the ensemble's own cfg is the first U-Net's; each member keeps its own (warp bins included),
    # so runs of other resolutions join: the mean is taken on the linear-frequency logits
    ensemble = MaskEnsemble(dataclasses.replace(networks[0].cfg, members=len(networks), temperature=1.0))
    ensemble.members = torch.nn.ModuleList(networks)
    return Separator(ensemble, separators[0].audio).eval()


def soup_of(separators: list[Separator]) -> Separator:
    """One network with the members' mean weights (the first member's temperature)."""
    states = [s.mask_net.state_dict() for s in separators]
    soup = MaskUNet(separators[0].mask_net.cfg)
    soup.load_state_dict({key: torch.stack([state[key].float() for state in states]).mean(dim=0) for key in states[0]})
    return Separator(soup, separators[0].audio).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path("."))
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model files; the first is the baseline")
    parser.add_argument("--members", nargs="+", help="per model, the U-Net index to keep or 'all' (default: all)")
    parser.add_argument("--soup", action="store_true", help="also score the members' averaged weights")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    separators = [load_separator(args.checkout / path)[0] for path in args.models]
    variants = {"ensemble": ensemble_of(separators, args.members), **({"soup": soup_of(separators)} if args.soup else {})}
    result = {"models": [str(p) for p in args.models], "members": args.members or ["all"] * len(args.models),
              "temperatures": [s.mask_net.cfg.temperature for s in separators],
              **compare_variants(checkout=args.checkout, baseline=separators[0], variants=variants, kinds=("text", "audio"))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
