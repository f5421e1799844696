require("http").createServer((q, s) => s.end("old")).listen(process.env.PORT)
