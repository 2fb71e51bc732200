-- The pure parts of a bulk run: list lines, query identity, the shard
-- hash, the resume scan, the checked writer and the progress line.
local queries = require "mxprobe.cli.queries"
local resume = require "mxprobe.cli.resume"
local output = require "mxprobe.cli.output"
local progress = require "mxprobe.cli.progress"

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- a file handle over a string, for the line reader
local function handle_of(s)
  local path = os.tmpname()
  write_file(path, s)
  local f = assert(io.open(path, "rb"))
  os.remove(path)
  return f
end

describe("queries.parse_line #unit", function()
  it("trims spaces and drops blank lines and comments", function()
    assert.equal("example.org", queries.parse_line("  example.org \t\n"))
    assert.equal("example.org", queries.parse_line("example.org # our main domain\n"))
    assert.is_nil(queries.parse_line("\n"))
    assert.is_nil(queries.parse_line("   \r\n"))
    assert.is_nil(queries.parse_line("# a comment\n"))
    assert.is_nil(queries.parse_line("   # indented comment"))
    assert.equal("[192.0.2.1]:2525", queries.parse_line("[192.0.2.1]:2525\r\n"))
  end)
end)

describe("queries.identity #unit", function()
  it("gives two spellings of one query one key", function()
    assert.equal("example.org", queries.identity("Example.ORG."))
    assert.equal("example.org", queries.identity("example.org"))
    assert.equal("mx.example.org:2525", queries.identity("MX.example.org:2525"))
    assert.equal("[2001:db8::1]", queries.identity("[2001:0db8:0:0::1]"))
    assert.equal("[192.0.2.1]:25", queries.identity("[192.0.2.1]:25"))
  end)
  it("says why a query is invalid", function()
    local k, err = queries.identity("exa mple..test")
    assert.is_nil(k)
    assert.matches("not allowed in a domain name", err)
  end)
end)

describe("queries.fnv1a and shards #unit", function()
  it("is FNV-1a 32 (the published test vectors)", function()
    assert.equal(0x811c9dc5, queries.fnv1a(""))
    assert.equal(0xe40c292c, queries.fnv1a("a"))
    assert.equal(0xbf9cf968, queries.fnv1a("foobar"))
  end)
  it("parses I/N and refuses what is out of range", function()
    assert.same({ 0, 4 }, { queries.parse_shard("0/4") })
    assert.same({ 3, 4 }, { queries.parse_shard("3/4") })
    for _, bad in ipairs { "4/4", "-1/4", "1/0", "x/4", "1", "1/2/3", "" } do
      local i, err = queries.parse_shard(bad)
      assert.is_nil(i, bad)
      assert.matches("^%-%-shard", err)
    end
  end)
  it("puts every query in exactly one of N shards, and spreads them", function()
    local per = { [0] = 0, 0, 0, 0 }
    for k = 1, 4000 do
      local key = ("d%d.example.org"):format(k)
      local hits = 0
      for i = 0, 3 do
        if queries.in_shard(key, i, 4) then
          hits = hits + 1
          per[i] = per[i] + 1
        end
      end
      assert.equal(1, hits, key)
    end
    for i = 0, 3 do assert.is_true(per[i] > 850 and per[i] < 1150, tostring(per[i])) end
  end)
end)

describe("queries.source #unit", function()
  it("streams args then the file's queries, reports bad lines by number, applies the selector", function()
    local fh = handle_of("# list\n\nb.example.org\n  exa mple..test \nc.example.org # x\nD.example.org.\n")
    local bad = {}
    local select = queries.selector { skip = { ["d.example.org"] = true } }
    local src = queries.source {
      args = { "a.example.org" }, read_line = queries.file_lines(fh), name = "list.txt", select = select,
      on_invalid = function(name, n, msg) bad[#bad + 1] = ("%s:%d: %s"):format(name, n, msg) end,
    }
    local got = {}
    for q in src do got[#got + 1] = q end
    assert.same({ "a.example.org", "b.example.org", "c.example.org" }, got)
    assert.equal(1, #bad)
    assert.matches('^list.txt:4: "exa mple..test" contains characters', bad[1])
  end)
  it("reads one line per query pulled, and ends early when told to stop", function()
    local fh = handle_of("a.example.org\nb.example.org\nc.example.org\n")
    local stop = false
    local src = queries.source { read_line = queries.file_lines(fh), stop = function() return stop end }
    assert.equal("a.example.org", src())
    assert.equal("b.example.org\n", fh:read("L"))   -- nothing read ahead
    stop = true
    assert.is_nil(src())
  end)
  it("counts a file's queries under the selector, invalid ones not", function()
    local fh = handle_of("a.example.org\n#\nbad..name\nb.example.org\n")
    assert.equal(2, queries.count(queries.file_lines(fh), queries.selector {}))
  end)
end)

describe("core.line_reader #unit", function()
  local core = require "mxprobe.core"
  local function lines_of(content)
    local path = os.tmpname()
    write_file(path, content)
    local r = assert(core.line_reader(path))
    local got = {}
    for line in queries.reader_lines(r, function() end, error) do got[#got + 1] = line end
    r:close()
    os.remove(path)
    return got
  end

  it("gives lines without their newline, the last one without a newline too", function()
    assert.same({ "a.example.org", "", "  b.example.org # x", "c" },
      lines_of("a.example.org\n\n  b.example.org # x\r\nc"))
    assert.same({}, lines_of(""))
  end)

  it("cuts a line past the limit to one byte more, and drops its rest", function()
    local max = core.limits.list_line_max
    local got = lines_of(("x"):rep(max) .. "\n" .. ("y"):rep(3 * max) .. "\nz\n")
    assert.equal(3, #got)
    assert.equal(max, #got[1])
    assert.equal(("y"):rep(max + 1), got[2])
    assert.equal("z", got[3])
  end)

  it("never blocks on a slow pipe: no line yet, the caller waits for the descriptor", function()
    local loop = require "mxprobe.loop"
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    -- the writer opens the FIFO at once and writes only 0.5 s later
    local w = io.popen(("sh -c 'exec 3>%s; sleep 0.5; echo late.example.org >&3'"):format(fifo), "r")
    local r = assert(core.line_reader(fifo))
    local not_ready = 0
    local read_line = queries.reader_lines(r, function(fd)
      while not loop.wait(fd, loop.READ, core.now() + 50) do not_ready = not_ready + 1 end
    end, error)
    assert.equal("late.example.org", read_line())
    assert.is_nil(read_line())
    assert.is_true(not_ready >= 5, tostring(not_ready))   -- it waited in 50 ms steps, not in read(2)
    r:close()
    w:close()
    os.remove(fifo)
  end)

  it("refuses a file it cannot open with a message", function()
    local r, err = core.line_reader("/nonexistent/list.txt")
    assert.is_nil(r)
    assert.matches("^open /nonexistent/list.txt: No such file", err)
  end)
end)

describe("resume.scan #unit", function()
  local R = "mxprobe.result/1"
  local function line(q, schema) return ('{"schema":"%s","query":"%s","verdict":"ok"}\n'):format(schema or R, q) end

  it("knows the queries of every complete line, and measures a torn tail", function()
    local path = os.tmpname()
    write_file(path, line("a.example.org") .. line("B.Example.org.") .. '{"schema":"mxprobe.res')
    local done, info = assert(resume.scan(path, R))
    assert.same({ ["a.example.org"] = true, ["b.example.org"] = true }, done)
    assert.equal(2, info.lines)
    assert.equal(22, info.torn)
    assert.same({ ok = 2 }, info.verdicts)
    assert.is_true(resume.drop_torn(path, info))
    -- the complete lines are kept byte for byte, the torn one is gone
    assert.equal(line("a.example.org") .. line("B.Example.org."), read_file(path))
    os.remove(path)
  end)

  it("takes a missing file as an empty one", function()
    local path = os.tmpname()
    os.remove(path)
    local done, info = assert(resume.scan(path, R))
    assert.same({}, done)
    assert.equal(0, info.torn)
    os.remove(path)
  end)

  it("refuses a file of another format or a broken complete line, and changes nothing", function()
    local path = os.tmpname()
    local content = line("a.example.org", "mxprobe.facts/2")
    write_file(path, content)
    local done, err = resume.scan(path, R)
    assert.is_nil(done)
    assert.equal(path .. ":1: a mxprobe.facts/2 line, not mxprobe.result/1: "
      .. "resume with the --format that wrote the file", err)
    write_file(path, line("a.example.org") .. "{oops}\n" .. line("b.example.org"))
    done, err = resume.scan(path, R)
    assert.is_nil(done)
    assert.equal(path .. ":2: not a JSON line; cannot resume into this file", err)
    assert.equal(line("a.example.org") .. "{oops}\n" .. line("b.example.org"), read_file(path))
    os.remove(path)
  end)
end)

describe("output writers #unit", function()
  it("says a full disk on the first line it cannot flush", function()
    local w = assert(output.stream("/dev/full"))
    local ok, err = w:line("{}")
    assert.is_nil(ok)
    assert.equal("cannot write to /dev/full: No space left on device", err)
    -- and stays failed
    assert.is_nil((w:line("{}")))
  end)

  it("appends lines to a file", function()
    local path = os.tmpname()
    write_file(path, "old\n")
    local w = assert(output.stream(path))
    assert.is_true(w:line("new"))
    assert.is_true(w:commit())
    assert.equal("old\nnew\n", read_file(path))
    os.remove(path)
  end)

  it("replaces a document only when it is complete", function()
    local path = os.tmpname()
    write_file(path, "old document\n")
    local w = assert(output.document(path))
    assert.is_true(w:write("new "))
    assert.equal("old document\n", read_file(path))
    w:abort()
    assert.equal("old document\n", read_file(path))
    w = assert(output.document(path))
    assert.is_true(w:write("new document\n"))
    assert.is_true(w:commit())
    assert.equal("new document\n", read_file(path))
    -- no temporary file is left behind
    local dir, base = path:match("^(.*)/([^/]*)$")
    local p = assert(io.popen("ls -a " .. dir))
    for name in p:lines() do
      assert.is_nil(name:find("." .. base .. ".", 1, true) == 1 and name or nil)
    end
    p:close()
    os.remove(path)
  end)
end)

describe("progress #unit", function()
  local function fake_out()
    local o = { buf = {} }
    function o:write(...) for _, s in ipairs { ... } do self.buf[#self.buf + 1] = s end return self end
    function o:flush() return self end
    function o:text() return table.concat(self.buf) end
    return o
  end

  it("says done/total, rate, in flight and ETA", function()
    local t = 100
    local out = fake_out()
    local P = progress.new { out = out, tty = true, show = true, total = 100, now = function() return t end }
    for _ = 1, 30 do P:started() end
    t = 110
    for _ = 1, 20 do P:finished("ok") end
    assert.equal("20/100 done, 2.0/s, 10 in flight, ETA 40s", P:line())
    P:finished("critical")
    assert.equal("21 done: 20 ok, 1 critical in 10s", P:summary())
  end)

  it("redraws in place on a terminal and clears before a message", function()
    local out = fake_out()
    local P = progress.new { out = out, tty = true, show = true, now = function() return 0 end }
    P:started()
    P:say("x:3: bad line (skipped)")
    assert.equal("\r0 done, 0.0/s, 1 in flight\27[K\r\27[Kmxprobe: x:3: bad line (skipped)\n", out:text())
  end)

  it("writes no control character when stderr is not a terminal, and nothing unless shown", function()
    local out = fake_out()
    local t = 0
    local P = progress.new { out = out, tty = false, show = true, total = 2, now = function() return t end }
    P:started()
    t = 10
    P:finished("ok")
    P:done()
    assert.equal("mxprobe: 0/2 done, 0.0/s, 1 in flight\nmxprobe: 1/2 done, 0.1/s, 0 in flight, ETA 10s\n", out:text())
    local quiet = fake_out()
    local Q = progress.new { out = quiet, tty = false, show = false, now = function() return 0 end }
    Q:started()
    Q:finished("ok")
    Q:done()
    assert.equal("", quiet:text())
  end)
end)
