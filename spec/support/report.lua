-- Spec helpers for the reports (issue 11): real parsers, not patterns.
--   report.csv_rows(s)   -> rows parsed by Python's csv module (RFC 4180)
--   report.html_parse(s) -> { elements = { {tag, attrs = {{name, value}, ...}}, ... },
--                             text = all character data, joined }
--                          by Python's html.parser (the HTML5 tokenizer rules)
--   report.chromium(args) -> stdout, status: Debian's chromium, headless,
--                          with a fresh profile and nothing on the network
--   report.judged(names, opts) -> facts_list, judgements (fixtures, default policy)
local cjson = require "cjson"

local M = {}

local function run_python(script, input)
  local inp = os.tmpname()
  local fh = assert(io.open(inp, "wb"))
  fh:write(input)
  fh:close()
  local py = os.tmpname()
  fh = assert(io.open(py, "wb"))
  fh:write(script)
  fh:close()
  local p = assert(io.popen(("python3 %s %s"):format(py, inp)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(inp)
  os.remove(py)
  assert(ok, "python3 failed: " .. out)
  return cjson.decode(out)
end

local CSV_PY = [[
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f, strict=True))
print(json.dumps(rows))
]]

function M.csv_rows(s)
  return run_python(CSV_PY, s)
end

local HTML_PY = [[
import json, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.text, self.decls = [], [], []
    def handle_starttag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": [[k, v if v is not None else ""] for k, v in attrs]})
    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
    def handle_data(self, d):
        self.text.append(d)
    def handle_comment(self, d):
        self.decls.append("comment")
    def handle_decl(self, d):
        self.decls.append(d)
    def unknown_decl(self, d):
        self.decls.append(d)
    def handle_pi(self, d):
        self.decls.append("pi")
p = P()
with open(sys.argv[1], encoding="utf-8") as f:
    p.feed(f.read())
p.close()
print(json.dumps({"elements": p.elements, "text": "".join(p.text), "decls": p.decls}))
]]

function M.html_parse(s)
  return run_python(HTML_PY, s)
end

--- Runs chromium headless on a file with the given extra arguments
-- (--dump-dom, --screenshot=...): a fresh profile, no network services.
function M.chromium(extra, file)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local cmd = ("chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    .. "--disable-background-networking --disable-component-update --disable-sync "
    .. "--user-data-dir=%s %s 'file://%s' 2>/dev/null"):format(dir, extra, file)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, status = p:close()
  os.execute("rm -rf " .. dir)
  return out, status
end

function M.judged(names, jopts)
  local fixtures = require "fixtures.facts._load"
  local judge = require "mxprobe.judge"
  local fl, jl = {}, {}
  for i, name in ipairs(names) do
    fl[i] = fixtures.load(name)
    jl[i] = judge.run(fl[i], jopts and jopts.policy, jopts and jopts.ctx)
  end
  return fl, jl
end

-- the elements and attributes the HTML report may contain; anything else
-- came from somewhere it must not
M.ELEMENTS = {}
for t in ([[html head meta title style body header h1 h2 h3 p main section div b span table thead tbody tr th
  td a code figure figcaption svg text rect line article dl dt dd details summary footer br]]):gmatch("%S+") do
  M.ELEMENTS[t] = true
end
M.ATTRIBUTES = {}
for a in ([[lang charset http-equiv content name class id href role width height viewbox xmlns x y x1 y1 x2 y2
  text-anchor rx aria-label open]]):gmatch("%S+") do
  M.ATTRIBUTES[a] = true
end

return M
