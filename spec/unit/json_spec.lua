-- mxprobe.json: the encoder's fast path (a document that needs no cleaning
-- goes to lua-cjson as it is) and its cleaning path give what the cleaning
-- alone always gave; the caller's tables are never changed.
local json = require "mxprobe.json"
local cjson = require "cjson"

local LISTS = { records = true, lines = true }

-- a deep copy, to see that encode left its argument as it was
local function copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[k] = copy(x, seen) end
  return out
end

local function enc(v)
  local before = copy(v)
  local s = json.encode(v, LISTS)
  assert.same(before, v)
  return s
end

describe("mxprobe.json #unit", function()
  it("writes a clean document as lua-cjson does, empty lists as []", function()
    assert.equal('{"a":{"records":[]}}', enc({ a = { records = {} } }))
    assert.equal('{"a":[1,"x",true,{}]}', enc({ a = { 1, "x", true, {} } }))
    assert.equal('{"records":[{"lines":[]},{"other":{}}]}', enc({ records = { { lines = {} }, { other = {} } } }))
    assert.equal("{}", json.encode({}, LISTS))   -- a bare {} is an object
    assert.equal('{"n":null}', enc({ n = cjson.null }))
    -- one table in two places: both written, the caller's left as it was
    local shared = { records = {} }
    assert.equal('{"list":[{"records":[]},{"records":[]}]}', enc({ list = { shared, shared } }))
    -- a string that holds the placeholder of an empty list is not taken for one
    assert.equal('[{"records":[]},"\\\\xFF\\\\xFE[]"]', enc({ { records = {} }, "\255\254[]" }))
  end)

  it("cleans what lua-cjson would write otherwise, in a copy", function()
    -- invalid UTF-8 in a value and in a key
    assert.equal('{"a":["x\\\\xFFy"]}', enc({ a = { "x\255y" } }))
    assert.equal('{"k\\\\xFE":1}', enc({ ["k\254"] = 1 }))
    -- NaN and infinities are null; functions and userdata are dropped (null in a list)
    -- (NaN ~= NaN: not through enc, which compares a copy)
    assert.equal('{"a":[null,null,1]}', json.encode({ a = { 0 / 0, math.huge, 1 } }, LISTS))
    assert.equal('{"a":[null,2]}', enc({ a = { print, 2 } }))
    assert.equal('{"b":1}', enc({ a = print, b = 1, c = io.stdout }))
    -- a list with holes and a number key of an object are object keys, written as Lua writes them
    assert.equal('{"a":{"2":"y"}}', enc({ a = { [2] = "y" } }))
    assert.equal('{"a":{"1152921504606846976":true}}', enc({ a = { [2 ^ 60 // 1] = true } }))
    -- an object left with no key is {} or, under a list key, []
    assert.equal('{"records":[]}', enc({ records = { [print] = 1 } }))
    assert.equal('{"x":{}}', enc({ x = { [true] = 1 } }))
    -- a cycle and depth past 64 are cut
    local t = { name = "t" }
    t.self = t
    assert.equal('{"name":"t"}', enc(t))
    local deep = {}
    local cur = deep
    for _ = 1, 70 do cur.d = {} cur = cur.d end
    local s = enc({ deep = deep })
    local _, depth = s:gsub("{", "")
    assert.equal(65, depth)
    -- a table with a metatable is read through it, as pairs() does
    local proxy = setmetatable({ raw = 1 }, { __pairs = function() return next, { v = "through" }, nil end })
    assert.equal('{"p":{"v":"through"}}', json.encode({ p = proxy }, LISTS))
  end)

  it("gives both paths the same document for each fixture (and keeps the caller's tables)", function()
    local fixtures = require "fixtures.facts._load"
    local facts = require "mxprobe.facts"
    local keys = facts.list_keys()
    -- the bytes of a document in order: the same for two that differ only
    -- in the order of keys ([] and {} included, which decoding would not tell)
    local function bytes(s)
      local t = { s:byte(1, -1) }
      table.sort(t)
      return string.char(table.unpack(t))
    end
    for _, name in ipairs(fixtures.names()) do
      local f = fixtures.load(name)
      local before = fixtures.copy(f)
      local fast = json.encode(f, keys)
      assert.same(before, f, name)
      -- a metatable on the top table: the cleaning path for it
      local slow = json.encode(setmetatable(fixtures.copy(f), {}), keys)
      assert.equal(#fast, #slow, name)
      assert.equal(bytes(fast), bytes(slow), name)
      assert.same(cjson.decode(fast), cjson.decode(slow), name)
    end
  end)
end)
