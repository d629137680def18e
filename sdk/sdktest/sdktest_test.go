package sdktest_test

import (
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/discovery"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatic(t *testing.T) {
	sdktest.Discovery(t, newStatic)
}

func TestStaticOverGRPC(t *testing.T) {
	sdktest.Discovery(t, func() core.Discovery { return overGRPC(t, newStatic()) })
}

func TestMesh(t *testing.T) {
	sdktest.Discovery(t, newMesh)
}

func TestMeshOverGRPC(t *testing.T) {
	sdktest.Discovery(t, func() core.Discovery { return overGRPC(t, newMesh()) })
}

func newMesh() core.Discovery {
	return discovery.NewMesh(discovery.MeshOptions{Interval: 100 * time.Millisecond})
}

func overGRPC(t *testing.T, impl core.Discovery) core.Discovery {
	g, err := sdktest.OverGRPC(impl, sdk.ClientConfig{ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return g
}
