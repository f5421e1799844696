const http = require("http");
const ms = require("ms");
const started = Date.now();
http.createServer((req, res) => {
  res.end(`up ${ms(Date.now() - started)}\n`);
}).listen(process.env.PORT || 5000);
