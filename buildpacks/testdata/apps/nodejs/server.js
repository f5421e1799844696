const http = require("http");
const fs = require("fs");
const ms = require("ms");

const port = process.env.PORT || 5000;
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain");
  res.end(`hello from node ${process.version} (${process.env.NODE_ENV}); ms: ${ms(60000)}; ${fs.readFileSync("build-output.txt", "utf8")}`);
}).listen(port, () => console.log(`listening on ${port}`));
