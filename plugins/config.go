package plugins

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
)

// Config says which plugin binary to run and how to supervise it.
type Config struct {
	// Path is the plugin binary; Args its arguments.
	Path string
	Args []string
	// Checksum, if set, is the binary's SHA-256: a binary that differs is not
	// started (checked at every start, restarts included).
	Checksum []byte
	// AutoMTLS makes go-plugin secure the connection with a certificate
	// pair made for this run.
	AutoMTLS bool
	// Logger receives the host's logs and, re-logged line by line, the
	// plugin's (which it writes to its stderr). Default: none.
	Logger hclog.Logger
	// Options are handed to the plugin in Configure: endpoints, paths...
	Options map[string]string

	// StartTimeout bounds starting the plugin to the end of its handshake.
	// Default 10 s.
	StartTimeout time.Duration
	// CallTimeout bounds each call on the plugin. Default 2 s.
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart: it starts at
	// MinBackoff and doubles after each failed start, and after each crash
	// of a process that served for less than MaxBackoff. Defaults 50 ms, 5 s.
	MinBackoff, MaxBackoff time.Duration
	// KillTimeout bounds Close's wait for the plugin to exit, and a cancelled
	// start's. Default 3 s.
	KillTimeout time.Duration
	// ProgressInterval is how often a quiet discovery plugin must say so; one
	// silent for three intervals is deemed hung and restarted. Default 5 s,
	// at least sdk.MinProgressInterval.
	ProgressInterval time.Duration
	// RoutingGrace is how long a restarted routing plugin's tables are
	// completed with the routes of the table it had before the crash (while
	// their links are up), since it knows only its neighbours at first.
	// Default 3 s.
	RoutingGrace time.Duration
}

// DefaultConfig returns a Config for the plugin at path with every default
// set.
func DefaultConfig(path string) Config {
	return Config{
		Path:             path,
		StartTimeout:     10 * time.Second,
		CallTimeout:      2 * time.Second,
		MinBackoff:       50 * time.Millisecond,
		MaxBackoff:       5 * time.Second,
		KillTimeout:      3 * time.Second,
		ProgressInterval: 5 * time.Second,
		RoutingGrace:     3 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Path)
	if c.StartTimeout <= 0 {
		c.StartTimeout = d.StartTimeout
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = d.CallTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.KillTimeout <= 0 {
		c.KillTimeout = d.KillTimeout
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = d.ProgressInterval
	}
	if c.RoutingGrace <= 0 {
		c.RoutingGrace = d.RoutingGrace
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Verify reports the first setting that cannot work.
func (c Config) Verify() error {
	switch {
	case c.Path == "":
		return errors.New("plugins: no plugin path")
	case len(c.Checksum) != 0 && len(c.Checksum) != 32:
		return fmt.Errorf("plugins: checksum of %d bytes; a SHA-256 has 32", len(c.Checksum))
	case c.MinBackoff > c.MaxBackoff && c.MaxBackoff > 0:
		return fmt.Errorf("plugins: MinBackoff %v exceeds MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	case c.ProgressInterval > 0 && c.ProgressInterval < sdk.MinProgressInterval:
		// A plugin would send progress less often than the host expects it,
		// and be deemed hung and restarted for ever.
		return fmt.Errorf("plugins: ProgressInterval %v is below %v, the shortest a plugin honours", c.ProgressInterval, sdk.MinProgressInterval)
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("plugins: %s is not an executable file", c.Path)
	}
	return nil
}
