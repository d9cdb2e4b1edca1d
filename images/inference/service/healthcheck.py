"""The image's HEALTHCHECK: exit 0 when GET /health answers 200 (ok or degraded), else 1.

Degraded (no GPU, no engine yet) counts as healthy on purpose: restarting the container adds
neither; the reasons are in /health and the inference_degraded metric. An engine that does not
load or is not its model's (503, status "error") is unhealthy: the reasons are printed, so they are
in the container's health log for the deploy's health gate to show.
"""

import json
import os
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:%s/health" % os.environ.get("PORT", "8080"), timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except urllib.error.HTTPError as e:  # 503 error, or anything else but 200
    try:
        body = json.loads(e.read())
        detail = "status %s: %s" % (body.get("status"), "; ".join(body.get("reasons", [])))
    except Exception:
        detail = str(e)
    print("healthcheck: HTTP %d, %s" % (e.code, detail), file=sys.stderr)
    sys.exit(1)
except Exception as e:  # connection refused, timeout
    print("healthcheck: %s" % e, file=sys.stderr)
    sys.exit(1)
