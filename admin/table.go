package admin

// commandTable is the vocabulary: Dokku's shape (`topic:verb <app> args`)
// with Heroku's names where Dokku has none. Order here is the order of help.
func commandTable() []*command {
	return []*command{
		{name: "apps:list", aliases: []string{"apps"}, summary: "list the apps you can use", format: true, max: 0, run: appsList},
		{name: "apps:create", aliases: []string{"create"}, args: "<app>", summary: "create an app", min: 1, max: 1, run: appsCreate,
			help: "App names are DNS labels: 2 to 63 lower-case letters, digits and hyphens, starting with a letter.\nAn admin's first `git push` to an unknown app also creates it."},
		{name: "apps:info", args: "<app>", summary: "show an app's details", format: true, app: true, min: 1, max: 1, run: appsInfo},
		{name: "apps:rename", args: "<app> <new-name>", summary: "rename an app (its owner or an admin)", app: true, owner: true, min: 2, max: 2, run: appsRename,
			help: "The git remote changes with the name: update it with\n  git remote set-url skiff ssh://skiff@<host>/<new-name>"},
		{name: "apps:destroy", aliases: []string{"destroy"}, args: "<app>", summary: "destroy an app and everything in it (its owner or an admin)", app: true, owner: true, min: 1, max: 1, run: appsDestroy,
			flags: []flag{{name: "force", help: "do not ask; required when there is no terminal"}, {name: "confirm", value: "APP", help: "confirm by naming the app (Heroku's spelling)"}}},

		{name: "git:set", args: "<app> deploy-branch <branch>", summary: "set the branch whose pushes deploy the app", app: true, min: 3, max: 3, run: gitSet},
		{name: "git:report", args: "<app>", summary: "show the app's git settings and recent pushes", format: true, app: true, min: 1, max: 1, run: gitReport},

		{name: "access:list", aliases: []string{"access"}, args: "<app>", summary: "list who may push to and manage an app", format: true, app: true, min: 1, max: 1, run: accessList},
		{name: "access:add", args: "<app> <user>", summary: "let a user push to and manage an app (its owner or an admin)", app: true, owner: true, min: 2, max: 2, run: accessAdd},
		{name: "access:remove", args: "<app> <user>", summary: "take a user's access away (its owner or an admin)", app: true, owner: true, min: 2, max: 2, run: accessRemove},

		{name: "keys:list", aliases: []string{"keys"}, summary: "list users and their SSH keys (admin)", format: true, admin: true, max: 0, run: keysList},
		{name: "keys:add", args: "<user>", summary: "add SSH public keys from stdin to a user, creating the user (admin)", admin: true, min: 1, max: 1, run: keysAdd,
			flags: []flag{{name: "admin", help: "make the user an admin"}},
			help:  "Reads one or more public keys (authorized_keys lines) from stdin:\n  skiff keys:add alice --admin < alice.pub\n  cat alice.pub | ssh -p 2222 skiff@host keys:add alice"},
		{name: "keys:remove", args: "<user> [<fingerprint>]", summary: "remove one key of a user, or all of them (admin)", admin: true, min: 1, max: 2, run: keysRemove},

		{name: "events", args: "[<app>]", summary: "show the audit trail: who did what, when", format: true, max: 1, run: eventsList,
			flags: []flag{{name: "num", short: "n", value: "N", help: "number of events (default 50)"}}},
		{name: "whoami", summary: "show who your key says you are", format: true, max: 0, run: whoami},
		{name: "version", summary: "show skiff's version", format: true, max: 0, run: version},
		{name: "help", args: "[<topic>|<command>]", summary: "show help", max: 1, run: help},
	}
}
