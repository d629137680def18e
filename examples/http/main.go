// HTTP runs net/http over astranet streams. A server node serves an
// http.ServeMux with http.Serve on the listener Bind returns, under the
// service name "hello"; a client node's http.Client reaches it at
// http://hello/... by dialling streams instead of TCP connections: once
// through Transport.DialContext and once through HttpDial, the original
// astranet's helper.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/astranet-go/astranet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
}

func run() error {
	server := astranet.New()
	defer server.Close()
	if err := server.ListenAndServe("pipe", "http-example"); err != nil {
		return err
	}
	l, err := server.Bind("", "hello")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from node %s: %s %s (host %s, from %s)", server.ID(), r.Method, r.URL.Path, r.Host, r.RemoteAddr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l) // returns when srv shuts down
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Printf("server node %s serves HTTP on service \"hello\"\n", server.ID())

	client := astranet.New()
	defer client.Close()
	if err := client.Join("pipe", "http-example"); err != nil {
		return err
	}

	// The URL's host names the service; http.Transport adds ":80", which
	// would read as port 80 of the service, so drop it.
	viaDialContext := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return client.DialContext(ctx, "", strings.TrimSuffix(addr, ":80"))
		},
	}
	// HttpDial does the same, without a context, as the original did.
	viaHttpDial := &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return client.HttpDial(network, addr)
		},
	}
	for _, tc := range []struct {
		how string
		t   *http.Transport
		url string
	}{
		{"Transport.DialContext", viaDialContext, "http://hello/path"},
		{"HttpDial", viaHttpDial, "http://hello/other/path"},
	} {
		hc := &http.Client{Transport: tc.t, Timeout: 10 * time.Second}
		body, status, err := get(hc, tc.url)
		tc.t.CloseIdleConnections()
		if err != nil {
			return fmt.Errorf("GET %s via %s: %w", tc.url, tc.how, err)
		}
		fmt.Printf("client node %s, GET %s via %s: %s\n  %s\n", client.ID(), tc.url, tc.how, status, body)
	}
	return nil
}

func get(hc *http.Client, url string) (body []byte, status string, err error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return body, resp.Status, err
}
