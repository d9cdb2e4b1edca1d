"""The image's HEALTHCHECK: exit 0 when GET /health answers 200 (ok or degraded), else 1.

Degraded (no GPU, no engine yet) counts as healthy on purpose: restarting the container adds
neither; the reasons are in /health and the inference_degraded metric.
"""

import os
import sys
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:%s/health" % os.environ.get("PORT", "8080"), timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:  # connection refused, timeout, HTTP error
    print("healthcheck: %s" % e, file=sys.stderr)
    sys.exit(1)
