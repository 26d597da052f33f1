"""Put the repository root on sys.path so `import utils` works from `python scripts/X.py`.

`python scripts/X.py` puts scripts/ on sys.path, not the root; every script imports this first.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
