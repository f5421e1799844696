// The build needs a devDependency; the app at run time must not have it.
const leftPad = require("left-pad");
const agent = (process.env.npm_config_user_agent || "").split(" ")[0];
require("fs").writeFileSync("built.txt", `${leftPad("built", 7, ".")} by ${agent}`);
