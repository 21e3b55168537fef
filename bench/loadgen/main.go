// Command loadgen sends HTTP/1.1 requests over keep-alive connections to
// one URL on this machine for a fixed time, and prints the throughput and
// latency. It writes pre-rendered requests on raw connections and reads
// only the status line, the headers it needs and the body length, so that
// it takes as little of the CPU it shares with the server as it can.
//
//	loadgen -url http://127.0.0.1:18081/api/profile/ -c 64 -d 10s -tokens tokens.txt
//	loadgen -url http://127.0.0.1:18081/api/login/ -c 64 -d 10s -login-users 64 -password '...'
//	loadgen -hash-time
//
// The result is one line of key=value pairs (rps, ok, non2xx, errors,
// p50_ms, p99_ms, seconds). Only loopback addresses are accepted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"tokenauth/models"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("url", "", "URL to load (loopback only)")
	conns := flag.Int("c", 32, "connections, each sending one request at a time")
	duration := flag.Duration("d", 10*time.Second, "how long to measure (at most 10m)")
	warmup := flag.Duration("warmup", 2*time.Second, "how long to send before measuring")
	tokensFile := flag.String("tokens", "", "file of bearer tokens, one a line, spread over the connections")
	loginUsers := flag.Int("login-users", 0, "POST logins of users login1..loginN (one per connection, in turn)")
	password := flag.String("password", "", "the login users' password")
	hashTime := flag.Bool("hash-time", false, "print the median time of one argon2id hash with the service's parameters, alone and with one hash per core at once, and exit")
	flag.Parse()
	if *hashTime {
		fmt.Printf("hash_seconds=%.6f parallel_hash_seconds=%.6f\n", medianHashTime(15, 1), medianHashTime(15, runtime.NumCPU()))
		return nil
	}
	if *duration <= 0 || *duration > 10*time.Minute || *warmup < 0 || *warmup > time.Minute {
		return errors.New("-d must be within (0, 10m] and -warmup within [0, 1m]")
	}
	if *conns < 1 || *conns > 1024 {
		return errors.New("-c must be from 1 to 1024")
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-url must be an http:// URL: %q", *target)
	}
	if err := requireLoopback(u.Hostname()); err != nil {
		return err
	}
	requests, err := buildRequests(u, *tokensFile, *loginUsers, *password)
	if err != nil {
		return err
	}
	res, err := load(u.Host, requests, *conns, *warmup, *duration)
	if err != nil {
		return err
	}
	fmt.Println(res)
	return nil
}

// requireLoopback refuses any target but this machine.
func requireLoopback(host string) error {
	addrs, err := net.LookupIP(host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if !a.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address; loadgen only loads this machine", host)
		}
	}
	return nil
}

// buildRequests renders every request a connection may send.
func buildRequests(u *url.URL, tokensFile string, loginUsers int, password string) ([][]byte, error) {
	path := u.RequestURI()
	if loginUsers > 0 {
		var out [][]byte
		for i := 1; i <= loginUsers; i++ {
			body := fmt.Sprintf(`{"username":"login%d","password":%s}`, i, strconv.Quote(password))
			out = append(out, []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				path, u.Host, len(body), body)))
		}
		return out, nil
	}
	if tokensFile == "" {
		return [][]byte{[]byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, u.Host))}, nil
	}
	data, err := os.ReadFile(tokensFile)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, tok := range strings.Fields(string(data)) {
		out = append(out, []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", path, u.Host, tok)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no tokens in %s", tokensFile)
	}
	return out, nil
}

// result is what one run measured.
type result struct {
	ok, non2xx, errs int
	seconds          float64
	latencies        []time.Duration
	statuses         map[int]int
}

func (r result) String() string {
	slices.Sort(r.latencies)
	pct := func(p float64) float64 {
		if len(r.latencies) == 0 {
			return 0
		}
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))].Microseconds()) / 1000
	}
	var codes []string
	for code, n := range r.statuses {
		codes = append(codes, fmt.Sprintf("%d:%d", code, n))
	}
	slices.Sort(codes)
	return fmt.Sprintf("rps=%.1f ok=%d non2xx=%d errors=%d p50_ms=%.3f p99_ms=%.3f seconds=%.2f statuses=%s",
		float64(r.ok)/r.seconds, r.ok, r.non2xx, r.errs, pct(0.50), pct(0.99), r.seconds, strings.Join(codes, ","))
}

// load runs conns connections; connection i sends requests i, i+conns, ...
// in turn. Answers that arrive during the warm-up are not counted.
func load(host string, requests [][]byte, conns int, warmup, duration time.Duration) (result, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	stopAt := measureFrom.Add(duration)
	ctx, cancel := context.WithDeadline(context.Background(), stopAt.Add(30*time.Second))
	defer cancel()
	var (
		mu    sync.Mutex
		total = result{statuses: map[int]int{}}
		wg    sync.WaitGroup
	)
	for i := range conns {
		var mine [][]byte
		for j := i % len(requests); j < len(requests); j += conns {
			mine = append(mine, requests[j])
		}
		if len(mine) == 0 {
			mine = [][]byte{requests[i%len(requests)]}
		}
		wg.Go(func() {
			r := connection(ctx, host, mine, measureFrom, stopAt)
			mu.Lock()
			defer mu.Unlock()
			total.ok += r.ok
			total.non2xx += r.non2xx
			total.errs += r.errs
			total.latencies = append(total.latencies, r.latencies...)
			for code, n := range r.statuses {
				total.statuses[code] += n
			}
		})
	}
	wg.Wait()
	total.seconds = duration.Seconds()
	if total.ok == 0 {
		return total, fmt.Errorf("no successful request: %s", total)
	}
	return total, nil
}

// connection sends requests one after the other on one connection until
// stopAt, reconnecting after an error.
func connection(ctx context.Context, host string, requests [][]byte, measureFrom, stopAt time.Time) result {
	r := result{statuses: map[int]int{}}
	var dialer net.Dialer
	for n := 0; time.Now().Before(stopAt); {
		conn, err := dialer.DialContext(ctx, "tcp", host)
		if err != nil {
			r.errs++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		_ = conn.SetDeadline(stopAt.Add(30 * time.Second))
		br := bufio.NewReaderSize(conn, 32<<10)
		for time.Now().Before(stopAt) {
			sent := time.Now()
			if _, err = conn.Write(requests[n%len(requests)]); err != nil {
				break
			}
			n++
			var status int
			var keep bool
			if status, keep, err = readResponse(br); err != nil {
				break
			}
			// Throughput counts the answers that arrive within the
			// window, whenever they were sent: with slow requests (a
			// login waits for a hash) most answers in the window were
			// sent before it.
			if done := time.Now(); done.After(measureFrom) && done.Before(stopAt) {
				r.latencies = append(r.latencies, time.Since(sent))
				r.statuses[status]++
				if status >= 200 && status < 300 {
					r.ok++
				} else {
					r.non2xx++
				}
			}
			if !keep {
				break
			}
		}
		if err != nil && time.Now().Before(stopAt) {
			r.errs++
		}
		conn.Close()
	}
	return r
}

// readResponse reads one response and returns its status and whether the
// connection stays open.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	fields := bytes.Fields(line)
	if len(fields) < 2 {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(fields[1])); err != nil {
		return 0, false, err
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(value))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil {
				return 0, false, err
			}
			if _, err := br.Discard(int(size) + 2); err != nil {
				return 0, false, err
			}
			if size == 0 {
				return status, keep, nil
			}
		}
	case length >= 0:
		_, err = br.Discard(length)
		return status, keep, err
	default:
		_, err = io.Copy(io.Discard, br)
		return status, false, err
	}
}

// medianHashTime times argon2id with the service's parameters: n hashes
// on each of par goroutines at once, and the median of all.
func medianHashTime(n, par int) float64 {
	p := models.DefaultPasswordParams
	times := make([]float64, n*par)
	var wg sync.WaitGroup
	for g := range par {
		wg.Go(func() {
			salt := make([]byte, 16)
			for i := range n {
				start := time.Now()
				argon2.IDKey([]byte("a sturdy passphrase 42"), salt, p.Time, p.Memory, p.Threads, 32)
				times[g*n+i] = time.Since(start).Seconds()
			}
		})
	}
	wg.Wait()
	slices.Sort(times)
	return times[len(times)/2]
}
