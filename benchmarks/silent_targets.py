"""Share of training targets that are silent in their crop, per corpus (the SI-SDR loss's -80 dB
items, docs/separator.md): the first 100 training batches of the committed recipe.

    python benchmarks/silent_targets.py   # -> benchmarks/results/silent_targets.json
"""

import json
from pathlib import Path

import numpy as np
import torch

from marssep_core.config import load_section
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.separation.queries import QueryBank
from marssep_core.separation.stages import SupervisedConfig, training_sampler

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    cfg = load_section(SupervisedConfig, "train_supervised", ROOT / "params.yaml")
    bank = load_audio_bank(ROOT / "data" / "audio_bank")
    sampler = training_sampler(bank, QueryBank.load(ROOT / "data" / "query_bank.pt"), cfg.mixing, ROOT / "data" / "soundfonts")
    instruments = set(bank.index.loc[bank.index["corpus"] == "instruments", "class"])
    ratios: dict[str, list[float]] = {"everyday": [], "instruments": []}
    for step in range(100):
        batch = sampler.sample(cfg.loop.batch_size, np.random.default_rng([cfg.loop.seed, step, 0]))
        energy = (batch.target ** 2).sum(-1).clamp_min(1e-12) / (batch.mixture ** 2).sum(-1).clamp_min(1e-12)
        for label, ratio_db in zip(batch.target_class, (10 * torch.log10(energy)).tolist()):
            ratios["instruments" if label in instruments else "everyday"].append(ratio_db)
    result = {corpus: {"targets": len(v), "silent_share": round(float((np.array(v) < -60).mean()), 4)} for corpus, v in ratios.items()}
    out = ROOT / "benchmarks" / "results" / "silent_targets.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(result)


if __name__ == "__main__":
    main()
