//go:build !(darwin || linux || openbsd)

package core

// rawWriter is only available where golang.org/x/sys/unix has Writev; here
// every write goes through the link's writer goroutine.
type rawWriter struct{}

func newRawWriter(any) *rawWriter { return nil }

func (*rawWriter) write([][]byte) (int, error) { return 0, nil }
