package activities_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/dovaclean/go-update-orchestrator/activities"
	"github.com/dovaclean/go-update-orchestrator/devicemock/fleet"
	"github.com/dovaclean/go-update-orchestrator/workflows"
)

// BenchmarkPushFirmware measures the push path (probe, stream with
// SHA-256, answer) of a 1 MiB image to in-process devicemock devices, one
// device per push; bytes/s are reported with -bench.
func BenchmarkPushFirmware(b *testing.B) {
	const size = 1 << 20
	image := make([]byte, size)
	for i := range image {
		image[i] = byte(i * 31)
	}
	path := filepath.Join(b.TempDir(), "fw.bin")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(image)
	fw := workflows.Firmware{Version: targetVersion, URL: "file://" + path, SHA256: hex.EncodeToString(sum[:]), Size: size}

	f, err := fleet.New(fleet.Config{Devices: b.N, Version: oldVersion})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	(&activities.Activities{Client: activities.NewHTTPClient(nil)}).Register(env)

	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("dev-%05d", i+1)
		if _, err := env.ExecuteActivity(workflows.PushFirmwareActivity, pushRequest(srv.URL+"/devices/"+id, fw)); err != nil {
			b.Fatal(err)
		}
	}
}
