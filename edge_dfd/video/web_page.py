"""The page of the web view (edge_dfd.video.web) and what it is sent: self-contained HTML, CSS and script (no
external sources) with its Content-Security-Policy; ``dumps`` (JSON the page can parse); ``SSEClient`` (one event
stream's pending messages). The page shows the MJPEG stream, the track table and the event feed, says "ended"
(with why) when the server sends ``end``, and takes the token out of the address bar once the cookie is set."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import deque

MAX_QUEUED = 256  # face events waiting for one SSE client before it is dropped as too slow


def clean(o):
    """JSON-safe copy: numpy scalars / arrays to Python, NaN / inf to null (JSON.parse rejects NaN)."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, (str, int, bool)):
        return o
    if hasattr(o, "tolist"):  # numpy scalar or array
        return clean(o.tolist())
    return str(o)


def dumps(o) -> str:
    """Compact JSON of ``clean(o)``: what the page is sent."""
    return json.dumps(clean(o), separators=(",", ":"))


class SSEClient:
    """One /events client's pending messages: the latest tracks / stats, and the face events not yet sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = asyncio.Event()  # set on the server's loop only
        self.latest: dict[str, str] = {}
        self.faces: deque[str] = deque()
        self.dropped = False

    def put(self, kind: str, data: str | list[str]) -> None:
        with self.lock:
            if kind == "face":
                self.faces.extend(data)
                self.dropped |= len(self.faces) > MAX_QUEUED
            else:
                self.latest[kind] = data

    def take(self) -> bytes:
        with self.lock:
            end = self.latest.pop("end", None)
            msgs = [(k, d) for k, d in self.latest.items()] + [("face", d) for d in self.faces]
            if end is not None:  # last, after everything that happened before the end
                msgs.append(("end", end))
            self.latest.clear()
            self.faces.clear()
        return "".join(f"event: {k}\ndata: {d}\n\n" for k, d in msgs).encode()


PAGE_CSP = ("default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>%TITLE%</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;background:#111;color:#ddd}
h1{font-size:18px;margin:0 0 8px}#bar span{margin-right:14px}
main{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
#stream{max-width:100%;width:640px;background:#000;border:1px solid #333;min-height:120px}
table{border-collapse:collapse;min-width:300px}td,th{padding:3px 8px;border-bottom:1px solid #333;text-align:left}
tr.fake td.verdict{color:#f55;font-weight:bold}tr.real td.verdict{color:#5d5;font-weight:bold}
tr.pending td.verdict{color:#aaa}#conn.ended{color:#fc5;font-weight:bold}
#events{list-style:none;padding:0;margin:4px 0;max-height:220px;overflow:auto;font:12px monospace}
li.fake{color:#f88}li.real{color:#8d8}li.pending{color:#999}
</style></head><body>
<h1>%TITLE%</h1>
<div id="bar"><span>FPS <b id="fps">-</b></span><span>frames <b id="frames">-</b></span>
<span>uptime <b id="uptime">-</b></span><span id="conn">connecting</span></div>
<main><img id="stream" src="/stream.mjpg" alt="live stream">
<section><table id="track-table"><thead><tr><th>track</th><th>verdict</th><th>P(fake)</th><th>age (s)</th></tr>
</thead><tbody id="tracks"><tr class="empty"><td colspan="4">no faces</td></tr></tbody></table>
<h2 style="font-size:15px">events</h2><ol id="events"></ol></section></main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const V = ["fake", "real", "pending"];
let ended = false;
// opened with ?token=...: the server has set a cookie, so the token leaves the address bar and the history
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);
const fmt = (v, d) => (v === null || v === undefined || v === "") ? "-" : Number(v).toFixed(d);
function cell(tr, cls, text) { const td = document.createElement("td"); td.className = cls;
  td.textContent = text; tr.appendChild(td); }
function tracks(ts) {
  const rows = ts.map(t => { const tr = document.createElement("tr"); const v = V.includes(t.verdict) ? t.verdict : "pending";
    tr.className = "track " + v; tr.id = "track-" + t.track; tr.dataset.track = t.track;
    cell(tr, "id", t.track); cell(tr, "verdict", t.verdict); cell(tr, "score", fmt(t.smoothed, 3));
    cell(tr, "age", fmt(t.age, 1)); return tr; });
  if (!rows.length) { const tr = document.createElement("tr"); tr.className = "empty"; cell(tr, "", "no faces");
    tr.firstChild.colSpan = 4; rows.push(tr); }
  $("tracks").replaceChildren(...rows);
}
function face(e) {
  const li = document.createElement("li"); li.className = "event " + (V.includes(e.verdict) ? e.verdict : "pending");
  const when = e.utc ? String(e.utc).slice(11, 19) : fmt(e.time, 2);
  li.textContent = when + "  track " + e.track + "  " + e.verdict + "  P(fake) " + fmt(e.smoothed, 3);
  const ol = $("events"); ol.prepend(li); while (ol.children.length > 50) ol.lastChild.remove();
}
function stats(s) { $("fps").textContent = fmt(s.fps, 1); $("frames").textContent = s.frames ?? "-";
  $("uptime").textContent = s.uptime == null ? "-" : fmt(s.uptime, 0) + " s"; }
function end(e, es) { ended = true; es.close(); $("conn").className = "ended";
  $("conn").textContent = "ended" + (e.reason ? " (" + e.reason + ")" : ""); }
function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { if (!ended) $("conn").textContent = "live"; };
  es.onerror = () => { if (ended) return; $("conn").textContent = "reconnecting";
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000); };
  for (const [k, f] of [["tracks", tracks], ["face", face], ["stats", stats], ["end", end]])
    es.addEventListener(k, m => f(JSON.parse(m.data), es));
}
$("stream").onerror = () => setTimeout(() => { if (!ended) $("stream").src = "/stream.mjpg?t=" + Date.now(); }, 2000);
connect();
</script></body></html>
"""
