package testenv

// Names of what the release test needs, for RequireDep.
const (
	// DepARM64CrossCompiler builds the linux/arm64 release binary (cgo).
	DepARM64CrossCompiler = "the arm64 cross compiler (aarch64-linux-gnu-gcc)"
	// DepQemuARM64 runs the arm64 binary on this machine.
	DepQemuARM64 = "qemu-aarch64 (qemu-user)"
)

func init() {
	installHints[DepARM64CrossCompiler] = "apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross (scripts/test-deps.sh does)"
	installHints[DepQemuARM64] = "apt-get install -y qemu-user (scripts/test-deps.sh does)"
}
