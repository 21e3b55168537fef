// Command loadgen sends HTTP/1.1 requests over keep-alive connections to
// one URL on this machine for a fixed time, and prints the throughput and
// latency. It writes pre-rendered requests on raw connections and reads
// only the status line, the headers it needs and the body length, so that
// it takes as little of the CPU it shares with the server as it can.
//
//	loadgen -url http://127.0.0.1:18081/api/profile/ -c 64 -d 10s -tokens tokens.txt
//	loadgen -url http://127.0.0.1:18081/api/login/ -c 64 -d 10s -login-users 64 -password '...'
//	loadgen -url http://127.0.0.1:18082/api/profile/ -tokens tokens.txt -vs http://127.0.0.1:18083/api/profile/ -vs-tokens tokens.txt -c 64 -d 30s
//	loadgen -hash-time
//
// The result is one line of key=value pairs (rps, ok, non2xx, errors,
// p50_ms, p99_ms, seconds). With -vs, the two URLs are loaded in turn, in
// short slices, and the first line gives the ratio of their throughputs
// and the spread of the ratios of each four slices; the next two lines are
// each side's result. Only loopback addresses are accepted.
package main

import (
	"bufio"
	"bytes"
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

	"tokenauth/password"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	targetURL := flag.String("url", "", "URL to load (loopback only)")
	conns := flag.Int("c", 32, "connections, each sending one request at a time")
	duration := flag.Duration("d", 10*time.Second, "how long to measure (at most 10m)")
	warmup := flag.Duration("warmup", 2*time.Second, "how long to send before measuring")
	tokensFile := flag.String("tokens", "", "file of bearer tokens, one a line, spread over the connections")
	loginUsers := flag.Int("login-users", 0, "POST logins of users login1..loginN (one per connection, in turn)")
	password := flag.String("password", "", "the login users' password")
	vs := flag.String("vs", "", "a second URL to compare the first with, loaded in turn with it (interleaved slices)")
	vsTokens := flag.String("vs-tokens", "", "file of bearer tokens for -vs")
	vsHash := flag.Bool("vs-hash", false, "compare the load with the ceiling cores / time of one argon2id hash, timed alone between slices")
	slice := flag.Duration("slice", 400*time.Millisecond, "with -vs or -vs-hash: how long each slice of load lasts")
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
	u, requests, err := target(*targetURL, *tokensFile, *loginUsers, *password)
	if err != nil {
		return err
	}
	if *vs != "" || *vsHash {
		if *vs != "" && *vsHash {
			return errors.New("-vs and -vs-hash are two different comparisons: give one")
		}
		if *slice < 40*time.Millisecond || *slice > 10*time.Second {
			return errors.New("-slice must be within [40ms, 10s]")
		}
	}
	if *vsHash {
		return printAgainstHash(newSide(u.Host, requests, *conns), *slice, *warmup, *duration)
	}
	if *vs == "" {
		res, err := load(u.Host, requests, *conns, *warmup, *duration)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	}
	vu, vsRequests, err := target(*vs, *vsTokens, 0, "")
	if err != nil {
		return err
	}
	a, b := newSide(u.Host, requests, *conns), newSide(vu.Host, vsRequests, *conns)
	defer a.close()
	defer b.close()
	ra, rb, cycles := interleaved(a, b, *slice, *warmup, *duration)
	if ra.ok == 0 || rb.ok == 0 {
		return fmt.Errorf("no successful request: %s; vs: %s", ra, rb)
	}
	fmt.Printf("ratio=%.4f %s\n", ra.rps()/rb.rps(), spread(cycles))
	fmt.Println(ra)
	fmt.Println("vs:", rb)
	return nil
}

// spread describes the ratios of the cycles of an interleaved run.
func spread(cycles []float64) string {
	slices.Sort(cycles)
	q := func(p float64) float64 { return cycles[int(p*float64(len(cycles)-1))] }
	return fmt.Sprintf("cycles=%d cycle_min=%.4f cycle_p25=%.4f cycle_p50=%.4f cycle_p75=%.4f cycle_max=%.4f",
		len(cycles), q(0), q(0.25), q(0.5), q(0.75), q(1))
}

// printAgainstHash measures s against the ceiling of a load bound by
// password hashes, cores / time of one argon2id hash. It loads s in slices
// and, between them, times hashes alone on the then idle machine, so that
// each slice is compared with the hash time measured just before and just
// after it: this machine's speed drifts within seconds. The first warmup
// is not counted.
func printAgainstHash(s *side, slice, warmup, duration time.Duration) error {
	defer s.close()
	const hashes = 5
	cores := float64(runtime.NumCPU())
	warm := time.Now().Add(warmup)
	s.run(warm, warm)
	before := medianHashTime(hashes, 1)
	total := result{statuses: map[int]int{}}
	var reachable, hashSum float64
	var cycles []float64
	for total.seconds < duration.Seconds() {
		r := s.runSlice(slice)
		after := medianHashTime(hashes, 1)
		ceiling := cores / ((before + after) / 2)
		reachable += ceiling * r.seconds
		hashSum += before + after
		cycles = append(cycles, r.rps()/ceiling)
		total.add(r)
		before = after
	}
	if total.ok == 0 {
		return fmt.Errorf("no successful request: %s", total)
	}
	hash := hashSum / float64(2*len(cycles))
	fmt.Printf("ratio=%.4f ceiling_rps=%.1f hash_seconds=%.6f %s\n",
		float64(total.ok)/reachable, reachable/total.seconds, hash, spread(cycles))
	fmt.Println(total)
	return nil
}

// target parses a URL to load (loopback only) and renders its requests.
func target(raw, tokensFile string, loginUsers int, password string) (*url.URL, [][]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return nil, nil, fmt.Errorf("not an http:// URL: %q", raw)
	}
	if err := requireLoopback(u.Hostname()); err != nil {
		return nil, nil, err
	}
	requests, err := buildRequests(u, tokensFile, loginUsers, password)
	return u, requests, err
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

// result is what one run, or one side of an interleaved run, measured.
type result struct {
	ok, non2xx, errs int
	seconds          float64
	latencies        []time.Duration
	statuses         map[int]int
}

func (r result) rps() float64 { return float64(r.ok) / r.seconds }

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
		r.rps(), r.ok, r.non2xx, r.errs, pct(0.50), pct(0.99), r.seconds, strings.Join(codes, ","))
}

// add counts other's answers in r.
func (r *result) add(other result) {
	r.ok += other.ok
	r.non2xx += other.non2xx
	r.errs += other.errs
	r.seconds += other.seconds
	r.latencies = append(r.latencies, other.latencies...)
	for code, n := range other.statuses {
		r.statuses[code] += n
	}
}

// side is one URL under load: its connections, each with its share of the
// requests.
type side struct{ workers []*worker }

func newSide(host string, requests [][]byte, conns int) *side {
	s := &side{}
	for i := range conns {
		w := &worker{host: host}
		for j := i % len(requests); j < len(requests); j += conns {
			w.requests = append(w.requests, requests[j])
		}
		if len(w.requests) == 0 {
			w.requests = [][]byte{requests[i%len(requests)]}
		}
		s.workers = append(s.workers, w)
	}
	return s
}

// run loads the side from now until to, counting the answers that arrive
// within [from, to), and returns once every connection has its last
// answer.
func (s *side) run(from, to time.Time) result {
	var (
		mu    sync.Mutex
		total = result{statuses: map[int]int{}, seconds: to.Sub(from).Seconds()}
		wg    sync.WaitGroup
	)
	for _, w := range s.workers {
		wg.Go(func() {
			r := w.run(from, to)
			mu.Lock()
			defer mu.Unlock()
			r.seconds = 0
			total.add(r)
		})
	}
	wg.Wait()
	return total
}

// runSlice loads the side for one slice from now, counting the answers
// after its first quarter (in which the connections refill the server's
// queue) and before its end.
func (s *side) runSlice(slice time.Duration) result {
	start := time.Now()
	return s.run(start.Add(slice/4), start.Add(slice))
}

func (s *side) close() {
	for _, w := range s.workers {
		w.drop()
	}
}

// load runs conns connections for warmup + duration; connection i sends
// requests i, i+conns, ... in turn. Answers that arrive during the warm-up
// are not counted.
func load(host string, requests [][]byte, conns int, warmup, duration time.Duration) (result, error) {
	s := newSide(host, requests, conns)
	defer s.close()
	from := time.Now().Add(warmup)
	total := s.run(from, from.Add(duration))
	if total.ok == 0 {
		return total, fmt.Errorf("no successful request: %s", total)
	}
	return total, nil
}

// interleaved compares two sides under the same conditions: it loads them
// in turn, in slices of the given length, in the order A B B A (which
// cancels a steady drift of the machine's speed), until each has been
// measured for duration. The next slice starts once every answer of the
// last one is in, so no slice carries the other side's work. The first
// warmup of each side is not counted.
func interleaved(a, b *side, slice, warmup, duration time.Duration) (ra, rb result, cycles []float64) {
	ra, rb = result{statuses: map[int]int{}}, result{statuses: map[int]int{}}
	for spent := time.Duration(0); spent < warmup; spent += slice {
		a.runSlice(slice)
		b.runSlice(slice)
	}
	for ra.seconds < duration.Seconds() {
		a1, b1 := a.runSlice(slice), b.runSlice(slice)
		b2, a2 := b.runSlice(slice), a.runSlice(slice)
		cycles = append(cycles, float64(a1.ok+a2.ok)/float64(b1.ok+b2.ok))
		ra.add(a1)
		ra.add(a2)
		rb.add(b1)
		rb.add(b2)
	}
	return ra, rb, cycles
}

// worker is one keep-alive connection and the requests it sends in turn;
// it keeps its connection between runs.
type worker struct {
	host     string
	requests [][]byte
	n        int
	conn     net.Conn
	br       *bufio.Reader
	deadline time.Time // of conn, set once per run rather than per request
}

// run sends requests one after the other until to, reconnecting after an
// error, and counts the answers that arrive within [from, to).
func (w *worker) run(from, to time.Time) result {
	r := result{statuses: map[int]int{}}
	deadline := to.Add(30 * time.Second)
	for time.Now().Before(to) {
		if w.conn == nil {
			conn, err := net.DialTimeout("tcp", w.host, 5*time.Second)
			if err != nil {
				r.errs++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			w.conn, w.br = conn, bufio.NewReaderSize(conn, 32<<10)
		}
		if !w.deadline.Equal(deadline) {
			_ = w.conn.SetDeadline(deadline)
			w.deadline = deadline
		}
		sent := time.Now()
		status, keep, err := w.roundTrip()
		if err != nil {
			if time.Now().Before(to) {
				r.errs++
			}
			w.drop()
			continue
		}
		// Throughput counts the answers that arrive within the window,
		// whenever they were sent: with slow requests (a login waits for a
		// hash) most answers in the window were sent before it.
		if done := time.Now(); done.After(from) && done.Before(to) {
			r.latencies = append(r.latencies, done.Sub(sent))
			r.statuses[status]++
			if status >= 200 && status < 300 {
				r.ok++
			} else {
				r.non2xx++
			}
		}
		if !keep {
			w.drop()
		}
	}
	return r
}

// roundTrip sends the worker's next request and reads its answer.
func (w *worker) roundTrip() (status int, keep bool, err error) {
	if _, err := w.conn.Write(w.requests[w.n%len(w.requests)]); err != nil {
		return 0, false, err
	}
	w.n++
	return readResponse(w.br)
}

func (w *worker) drop() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br, w.deadline = nil, nil, time.Time{}
	}
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
	p := password.DefaultParams
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
