#!/usr/bin/env python
"""Search a folder of person crops with a trained model.

    python tools/demo.py --checkpoint runs/synthetic_quick/best.pth \
        --gallery datasets/Market-1501-synthetic/bounding_box_test \
        --query datasets/Market-1501-synthetic/query/0151_c1s1_000000_00.jpg --topk 10 --out runs/demo

Prints a ranked table per query, writes one PNG rank list per query and an index.html showing them all (a summary
header, the full query names, thumbnails linking to the full images, distances named and printed with enough
decimals, items marked as the evaluation protocol treats them). Gallery features are cached in the output folder;
a second run only embeds new or changed images. --out must be new, empty or an earlier demo's folder (--force
otherwise) and outside the gallery. --threshold takes tools/test.py --verification's verification.json;
--backend faiss / faiss-ivf search large galleries (pip install 'reid-toolkit[faiss]').
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
