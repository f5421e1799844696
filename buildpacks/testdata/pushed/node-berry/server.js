const http = require("http");
const fs = require("fs");
const ms = require("ms");
function has(name) {
  try { require.resolve(name); return "present"; } catch { return "pruned"; }
}
const agent = (process.env.npm_config_user_agent || "").split(" ")[0];
http.createServer((req, res) => {
  res.end(`hello from ${agent}; ms=${ms(60000)}; left-pad ${has("left-pad")}; ${fs.readFileSync("built.txt", "utf8")}; node ${process.version}\n`);
}).listen(process.env.PORT || 3000);
