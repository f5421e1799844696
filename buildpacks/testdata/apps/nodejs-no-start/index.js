console.log("not a server");
