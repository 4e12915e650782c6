"""A run's worth of small files: a sample sheet of 8 samples and R1/R2 FASTQ files for each."""

from __future__ import annotations

from pathlib import Path

from tests.sampleFileUpload.fastq_samples import gz, records

# LIV_M10 beside LIV_M1: a file of LIV_M10 must not land in LIV_M1 (longest sample id wins).
SAMPLES = [f"LIV_M{n}" for n in (1, 2, 3, 4, 5, 6, 7, 10)]
HEADER = "Sample_ID,Organism,Tissue,Sex,Date_Sample_Prep,Biological_Repeat"


def write_sheet(path: Path, samples: list[str] = SAMPLES) -> Path:
    rows = [HEADER] + [
        f"{sample_id},Mus musculus,liver,{'female' if n % 2 else 'male'},2024-03-0{n % 9 + 1},1"
        for n, sample_id in enumerate(samples)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_run(folder: Path, *, reads: int = 400, samples: list[str] = SAMPLES) -> list[Path]:
    """``<sample>_R1.fastq.gz`` and ``_R2`` for every sample, each a different valid file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, sample_id in enumerate(samples):
        for read in (1, 2):
            path = folder / f"{sample_id}_S{n + 1}_R{read}_001.fastq.gz"
            path.write_bytes(gz(records(reads, seed=10 * n + read, prefix=f"{sample_id}.")))
            paths.append(path)
    return paths
