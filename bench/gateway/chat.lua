-- wrk script: POST a small, realistic chat completion (non-streaming) to /v1/chat/completions.
-- Run: wrk -t1 -c64 -d10s -s bench/gateway/chat.lua http://127.0.0.1:PORT
-- Non-2xx answers are counted by wrk ("Non-2xx or 3xx responses"); run.py refuses a run with any.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench")
wrk.body = '{"model":"gpt-4o-mini","messages":[' ..
  '{"role":"system","content":"You are a helpful assistant. Answer in one short sentence."},' ..
  '{"role":"user","content":"What is the capital of France, and since when has it been the capital?"}],' ..
  '"max_tokens":64,"temperature":0}'
