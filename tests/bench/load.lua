-- wrk script for tests/bench (support.load): POST BENCH_BODY to BENCH_PATH, with
-- {id} taking the ids in BENCH_IDS in turn (each thread its own slice), a bearer
-- token, and one machine-readable result line at the end.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local ids = {}
  for line in io.lines(os.getenv("BENCH_IDS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  local nthreads = tonumber(os.getenv("BENCH_THREADS")) or 1
  local per = math.floor(#ids / nthreads)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }
  local body = os.getenv("BENCH_BODY")
  local template = os.getenv("BENCH_PATH")
  requests_ = {}
  for k = 1, per do
    local id = ids[(tid or 0) * per + k]
    local path = string.gsub(template, "{id}", id)
    requests_[k] = wrk.format("POST", path, headers, body)
  end
  n_ = 0
end

function request()
  n_ = n_ + 1
  return requests_[(n_ % #requests_) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
