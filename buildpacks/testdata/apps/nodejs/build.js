// The build step: proves scripts.build ran, with dependencies installed.
const fs = require("fs");
const ms = require("ms");
fs.writeFileSync("build-output.txt", `built with node ${process.version}, NODE_ENV=${process.env.NODE_ENV}, ms(90000)=${ms(90000)}\n`);
