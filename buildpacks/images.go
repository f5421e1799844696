package buildpacks

// The Debian packages the default builder's two images need for these
// buildpacks, beyond a debootstrap minbase (which has bash, coreutils, libc).
// The buildpack binary itself is static and needs none of them.
var (
	// BuilderPackages go into the build image.
	BuilderPackages = []string{
		"ca-certificates", // HTTPS to the npm registry and the Go module proxy
		"git",             // npm git dependencies, go "direct" module fetches
		"libstdc++6",      // node
		"python3",         // the Python buildpack's interpreter
		"python3-venv",    // python3 -m venv with ensurepip's pip
		"python3-dev",     // headers for Python packages built from source
		"python-is-python3",
		"g++", "make", // node-gyp native addons, C extensions, cgo
		"pkg-config",
		"patchelf", // points Debian's newer Pythons at their own C library in a layer
	}
	// RunPackages go into the run image, which apps start from.
	RunPackages = []string{
		"ca-certificates",   // outbound HTTPS from apps
		"libstdc++6",        // node
		"python3",           // the venv's interpreter is the run image's /usr/bin/python3
		"python-is-python3", // python, as Heroku apps and Procfiles call it
		"tzdata",
		"netbase", // /etc/services and /etc/protocols
	}
)
