package plugins_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/discovery"
	"github.com/astranet-go/astranet/plugins"
)

// A warm dial by name reads the node's snapshot of services and opens a
// stream to a direct neighbour: it should cost the same whether the snapshot
// came from the embedded discovery or from a plugin process. Each iteration
// dials, reads to the EOF the far listener's Close sends, and closes.

func BenchmarkWarmDialEmbedded(b *testing.B) {
	p := newPair(b, discovery.NewMesh(discovery.MeshOptions{}), func(core.Service) core.Discovery {
		return discovery.NewMesh(discovery.MeshOptions{})
	})
	defer p.close()
	benchDial(b, p)
}

func BenchmarkWarmDialPlugin(b *testing.B) {
	file := filepath.Join(b.TempDir(), "services.json")
	p := newPair(b, discovery.NewMesh(discovery.MeshOptions{}), func(echo core.Service) core.Discovery {
		writeServices(b, file, echo)
		cfg := plugins.DefaultConfig(filePlugin)
		cfg.Options = map[string]string{"path": file}
		return load(b, cfg)
	})
	defer p.close()
	benchDial(b, p)
}

func benchDial(b *testing.B, p *pair) {
	waitUntil(b, "echo in a's view", 10*time.Second, func() bool { return hasService(p.a, "echo", p.b.ID()) })
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		// Waiting for the listener's close (EOF) paces the loop to what the
		// far side accepts, so that its backlog never fills.
		if err := dialEcho(ctx, p.a); err != nil {
			b.Fatal(err)
		}
	}
}
