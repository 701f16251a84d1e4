package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DockerSocket is the Docker Engine socket the Docker tests use.
const DockerSocket = "/var/run/docker.sock"

// probeSource is the program inside the probe container: "sleep" keeps
// the container running; "<code> [words…]" prints the words on stdout,
// "err" on stderr, and exits with code; "big <n>" prints n bytes.
const probeSource = `package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	switch os.Args[1] {
	case "sleep":
		time.Sleep(24 * time.Hour)
		return
	case "big":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Print(strings.Repeat("x", n))
		return
	}
	code, _ := strconv.Atoi(os.Args[1])
	fmt.Println("out", strings.Join(os.Args[2:], " "))
	fmt.Fprintln(os.Stderr, "err")
	os.Exit(code)
}
`

// DockerProbeContainer builds a FROM scratch image holding a static probe
// binary (/probe, see probeSource), runs a container of it and returns the
// container's ID; image and container are removed at cleanup. It skips
// the test when no Docker engine answers on DockerSocket.
func DockerProbeContainer(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(DockerSocket); err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"main.go":    probeSource,
		"go.mod":     "module probe\n\ngo 1.22\n",
		"Dockerfile": "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\", \"sleep\"]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "probe", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe binary: %v\n%s", err, out)
	}
	tag := fmt.Sprintf("chorus-test-probe-%d", os.Getpid())
	name := strings.ReplaceAll(t.Name(), "/", "_") + fmt.Sprintf("-%d", os.Getpid())
	docker(t, dir, "build", "-q", "-t", tag, ".")
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	id := strings.TrimSpace(docker(t, dir, "run", "-d", "--rm", "--network", "none", "--name", name, tag))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// docker runs the docker CLI in dir and returns its standard output. The
// legacy builder is used: a FROM scratch build then needs no registry.
func docker(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
