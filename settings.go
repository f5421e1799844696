package skiff

// Per-app settings, stored by DomainService.Settings as strings; the admin
// commands write them and the deploy pipeline reads them.
const (
	SettingHealthPath      = "checks.path"           // checks:set path=/up
	SettingHealthTimeout   = "checks.timeout"        // seconds per attempt
	SettingHealthDeadline  = "checks.deadline"       // seconds for the whole check
	SettingWaitToRetire    = "checks.wait-to-retire" // seconds old instances drain
	SettingMaintenance     = "maintenance"           // "on"
	SettingMaintenancePage = "maintenance.page"      // HTML
	SettingACME            = "certs.auto"            // "on"
	SettingHSTS            = "certs.hsts"            // "on"
	SettingMaxBody         = "proxy.max-body"        // bytes
	SettingResponseTimeout = "proxy.timeout"         // seconds to the first byte
	SettingBuilder         = "builder"               // builder image reference
	SettingBuildpacks      = "buildpacks"            // JSON list
	SettingStopped         = "ps.stopped"            // JSON list of stopped types, "*" for all
	SettingAppJSONCheck    = "app.json.check"        // JSON HealthCheck from the last push's app.json
)
