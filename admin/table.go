package admin

import "github.com/skiffhq/skiff"

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

		{name: "config", aliases: []string{"config:show"}, args: "<app>", summary: "show an app's config vars", format: true, app: true, min: 1, max: 1, run: configShow},
		{name: "config:get", args: "<app> <KEY>", summary: "print one config var's value", format: true, app: true, min: 2, max: 2, run: configGet},
		{name: "config:set", aliases: []string{"config:add"}, args: "<app> KEY=VALUE…", summary: "set config vars and restart (a new release)", app: true, min: 2, max: -1, run: configSet,
			flags: []flag{{name: "no-restart", help: "store only; the next deploy or restart uses them"}, {name: "build", help: "also give them to builds (as /platform/env)"}},
			help:  "Values may hold anything but NUL: quote them for your shell, e.g.\n  ssh … config:set myapp 'GREETING=hello world' \"PEM=$(cat key.pem)\""},
		{name: "config:unset", aliases: []string{"config:remove"}, args: "<app> KEY…", summary: "remove config vars and restart (a new release)", app: true, min: 2, max: -1, run: configUnset,
			flags: []flag{{name: "no-restart", help: "store only; the next deploy or restart uses them"}}},

		{name: "releases", aliases: []string{"releases:list"}, args: "<app>", summary: "list an app's releases", format: true, app: true, min: 1, max: 1, run: releasesList},
		{name: "releases:info", args: "<app> [vN]", summary: "show a release (default: the current one)", format: true, app: true, min: 1, max: 2, run: releasesInfo},
		{name: "releases:rollback", aliases: []string{"rollback"}, args: "<app> [vN]", summary: "release an earlier version again (default: the one before)", app: true, min: 1, max: 2, run: releasesRollback,
			help: "Like Heroku, a rollback is a new release with vN's image and config vars."},

		{name: "ps", aliases: []string{"ps:list"}, args: "<app> [<type>]", summary: "list an app's instances: state, uptime, restarts, CPU and memory", format: true, app: true, min: 1, max: 2, run: psList},
		{name: "ps:scale", aliases: []string{"scale"}, args: "<app> [TYPE=N…]", summary: "set how many instances run (no arguments: show)", format: true, app: true, min: 1, max: -1, run: psScale},
		{name: "ps:restart", aliases: []string{"restart"}, args: "<app> [<type>]", summary: "replace instances with new ones, without downtime", app: true, min: 1, max: 2, run: psAction("restart")},
		{name: "ps:stop", aliases: []string{"stop"}, args: "<app> [<type>]", summary: "stop instances until ps:start", app: true, min: 1, max: 2, run: psAction("stop")},
		{name: "ps:start", aliases: []string{"start"}, args: "<app> [<type>]", summary: "start what ps:stop stopped", app: true, min: 1, max: 2, run: psAction("start")},
		{name: "resource:limit", args: "<app>", summary: "set memory, CPU and process limits of a process type", app: true, min: 1, max: 1, run: resourceLimit,
			flags: []flag{{name: "process-type", value: "TYPE", help: "the process type (default web)"}, {name: "memory", value: "SIZE", help: "memory, like 512m"},
				{name: "cpu", value: "CORES", help: "CPU cores, like 0.5"}, {name: "pids", value: "N", help: "processes and threads"}}},
		{name: "resource:report", args: "<app>", summary: "show the limits of each process type", format: true, app: true, min: 1, max: 1, run: resourceReport},
		{name: "logs", args: "<app>", summary: "show an app's logs: its processes, the platform and the router", app: true, min: 1, max: 1, run: logs,
			flags: []flag{{name: "num", short: "n", value: "N", help: "lines of history (default 100)"}, {name: "tail", short: "t", help: "keep streaming new lines"},
				{name: "ps", short: "p", value: "TYPE", help: "only web, web.1, or router (the access log)"}, {name: "since", value: "WHEN", help: "lines from 1h ago, 2d ago, or a time"}}},
		{name: "run", args: "<app> <command…>", summary: "run a one-off process of the current release", app: true, min: 2, max: -1, rawFrom: 1, run: run,
			help: "Runs like a dyno of the app, removed when it exits; its exit code is yours.\nUse `ssh -t` for an interactive terminal: ssh -t -p 2222 skiff@host run myapp bash"},

		{name: "builds", aliases: []string{"builds:list"}, args: "<app>", summary: "list an app's builds", format: true, app: true, min: 1, max: 1, run: buildsList},
		{name: "builds:info", args: "<app> [<id>]", summary: "show a build (default: the latest)", format: true, app: true, min: 1, max: 2, run: buildsInfo},
		{name: "builds:output", args: "<app> [<id>]", summary: "print a build's output (default: the latest)", app: true, min: 1, max: 2, run: buildsOutput},
		{name: "builds:cancel", args: "<app>", summary: "stop the app's running build", app: true, min: 1, max: 1, run: buildsCancel},
		{name: "builds:purge-cache", aliases: []string{"repo:purge-cache"}, args: "<app>", summary: "empty the app's build cache", app: true, min: 1, max: 1, run: buildsPurgeCache},
		{name: "buildpacks", aliases: []string{"buildpacks:list"}, args: "<app>", summary: "list the app's pinned buildpacks", format: true, app: true, min: 1, max: 1, run: buildpacksList},
		{name: "buildpacks:set", args: "<app> <buildpack>", summary: "pin one buildpack (or the one at --index)", app: true, min: 2, max: 2, run: buildpacksChange,
			flags: []flag{{name: "index", value: "N", help: "replace the buildpack at position N"}}},
		{name: "buildpacks:add", args: "<app> <buildpack>", summary: "add a pinned buildpack (at the end, or at --index)", app: true, min: 2, max: 2, run: buildpacksChange,
			flags: []flag{{name: "index", value: "N", help: "insert at position N"}}},
		{name: "buildpacks:remove", args: "<app> <buildpack>", summary: "remove a pinned buildpack", app: true, min: 2, max: 2, run: buildpacksChange},
		{name: "buildpacks:clear", args: "<app>", summary: "unpin all: detect again", app: true, min: 1, max: 1, run: buildpacksChange},
		{name: "builder:set", args: "<app> <image>|default", summary: "build the app with another CNB builder image (pulled now)", app: true, min: 2, max: 2, run: builderSet},
		{name: "builder:create", summary: "make (or refresh) the default builder from Debian (admin)", admin: true, max: 0, run: builderCreate,
			flags: []flag{{name: "if-missing", help: "do nothing when it exists and this skiff's buildpacks and lifecycle made it"}}},

		{name: "domains", aliases: []string{"domains:report"}, args: "<app>", summary: "list the hosts an app answers", format: true, app: true, min: 1, max: 1, run: domainsList},
		{name: "domains:add", args: "<app> <host>", summary: "add a custom domain (wildcards: admins)", app: true, min: 2, max: 2, run: domainsAdd},
		{name: "domains:remove", args: "<app> <host>", summary: "remove a custom domain", app: true, min: 2, max: 2, run: domainsRemove},
		{name: "certs", aliases: []string{"certs:report"}, args: "<app>", summary: "show an app's certificates and their expiry", format: true, app: true, min: 1, max: 1, run: certsReport},
		{name: "certs:add", aliases: []string{"certs:update"}, args: "<app>", summary: "add a certificate: PEM chain and key, or a tar of server.crt and server.key, on stdin", app: true, min: 1, max: 1, run: certsAdd,
			help: "  cat cert.pem key.pem | ssh … certs:add myapp\n  tar c server.crt server.key | ssh … certs:add myapp"},
		{name: "certs:remove", args: "<app>", summary: "remove the uploaded certificate", app: true, min: 1, max: 1, run: certsRemove},
		{name: "certs:auto", args: "<app> [on|off]", summary: "get and renew certificates automatically (ACME) for the app's hosts", app: true, min: 1, max: 2, run: certsAuto},
		{name: "certs:hsts", args: "<app> on|off", summary: "send Strict-Transport-Security over HTTPS", app: true, min: 2, max: 2, run: certsHSTS},
		{name: "checks:set", args: "<app> path=/up [timeout=S] [deadline=S] [wait-to-retire=S]", summary: "the check new web instances pass before taking traffic", format: true, app: true, min: 2, max: -1, run: checksSet},
		{name: "checks:report", aliases: []string{"checks"}, args: "<app>", summary: "show the app's checks", format: true, app: true, min: 1, max: 1, run: checksReport},
		{name: "maintenance", aliases: []string{"maintenance:report"}, args: "<app>", summary: "show whether maintenance mode is on", format: true, app: true, min: 1, max: 1, run: maintenanceReport},
		{name: "maintenance:on", aliases: []string{"maintenance:enable"}, args: "<app>", summary: "answer 503 with a maintenance page; the app keeps running", app: true, min: 1, max: 1, run: settingToggle(skiff.SettingMaintenance, true, "maintenance mode")},
		{name: "maintenance:off", aliases: []string{"maintenance:disable"}, args: "<app>", summary: "serve the app again", app: true, min: 1, max: 1, run: settingToggle(skiff.SettingMaintenance, false, "maintenance mode")},
		{name: "maintenance:page", args: "<app>", summary: "set the maintenance page (HTML on stdin; empty for the default)", app: true, min: 1, max: 1, run: maintenancePage},

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
		{name: "backup", summary: "write a consistent copy of skiff's database to stdout (admin)", admin: true, max: 0, run: backup,
			help: "  ssh -p 2222 skiff@host backup > skiff-$(date +%F).db\nTo restore: stop skiff, put the file at DATA/skiff.db, start skiff; apps redeploy from their stored images.\nThe copy holds every config var: keep it as safe as the server."},
		{name: "whoami", summary: "show who your key says you are", format: true, max: 0, run: whoami},
		{name: "version", summary: "show skiff's version", format: true, max: 0, run: version},
		{name: "help", args: "[<topic>|<command>]", summary: "show help", max: 1, run: help},
	}
}
