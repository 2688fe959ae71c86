wrk.method = "POST"
wrk.body = '{"model":"up/fake-model","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-prof-0123456789abcdef0123456789"
