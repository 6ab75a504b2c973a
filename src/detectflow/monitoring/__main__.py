"""`python -m detectflow.monitoring [CHART_DIR]`: copy the rules and the dashboard into the chart's files/."""

import sys
from pathlib import Path

from detectflow.monitoring import sync_chart

for written in sync_chart(Path(sys.argv[1] if len(sys.argv) > 1 else "charts/detectflow")):
    print(written)
