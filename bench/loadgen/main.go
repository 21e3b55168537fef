// Command loadgen sends HTTP/1.1 requests over keep-alive connections to
// one URL on this machine for a fixed time, and prints the throughput and
// latency. It writes pre-rendered requests on raw connections and reads
// only the status line, the headers it needs and the body length, so that
// it takes as little of the CPU it shares with the server as it can.
//
//	loadgen -url http://127.0.0.1:18081/api/profile/ -c 64 -d 10s -tokens tokens.txt
//	loadgen -url http://127.0.0.1:18081/api/login/ -c 64 -d 10s -login-users 64 -password '...'
//	loadgen -url http://127.0.0.1:18082/api/profile/ -tokens tokens.txt -vs http://127.0.0.1:18083/api/profile/ -vs-tokens tokens.txt -c 64 -d 30s
//	loadgen -url http://127.0.0.1:18081/api/profile/ -tokens tokens.txt -flood http://127.0.0.1:18081/api/login/ -flood-c 64 -c 64 -d 30s -slice 3s
//	loadgen -url http://127.0.0.1:18085/api/login/ -probe-user login1 -password '...' -n 40 -flood-c 64
//	loadgen -hash-time -hash-slots 2
//
// The result is one line of key=value pairs (rps, ok, non2xx, errors,
// p50_ms, p99_ms, p999_ms, seconds). With -vs, the two URLs are loaded in
// turn, in short slices, and the first line gives the ratio of their
// throughputs and the spread of the ratios of each four slices; the next
// two lines are each side's result. With -flood, the URL is loaded in turn
// with and without a flood of failed logins (unique usernames, and unique
// client addresses in X-Forwarded-For) on the -flood URL, and a third line
// gives the flood's own result. With -probe-user, logins of a known user
// with a wrong password and of unknown usernames are timed one at a time,
// idle and then during a flood. Only loopback addresses are accepted.
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
	hashTime := flag.Bool("hash-time", false, "print the median time of one argon2id hash with the service's parameters, alone and with -hash-slots at once, and exit")
	hashSlots := flag.Int("hash-slots", max(1, runtime.NumCPU()-1), "the server's PASSWORD_HASH_CONCURRENCY: the ceiling of -vs-hash is this many hashes at once")
	flood := flag.String("flood", "", "a login URL to flood with failed logins while the -url load runs, in every other slice")
	floodConns := flag.Int("flood-c", 64, "connections of the flood")
	probeUser := flag.String("probe-user", "", "time logins of this user with a wrong password against logins of unknown usernames, one at a time")
	probes := flag.Int("n", 40, "with -probe-user: logins of each kind timed, idle and again during a flood of -flood-c connections")
	flag.Parse()
	if *hashSlots < 1 || *hashSlots > 256 {
		return errors.New("-hash-slots must be from 1 to 256")
	}
	if *hashTime {
		fmt.Printf("hash_seconds=%.6f parallel_hash_seconds=%.6f\n", medianHashTime(15, 1), medianHashTime(15, *hashSlots))
		return nil
	}
	if *duration <= 0 || *duration > 10*time.Minute || *warmup < 0 || *warmup > time.Minute {
		return errors.New("-d must be within (0, 10m] and -warmup within [0, 1m]")
	}
	if *conns < 1 || *conns > 1024 || *floodConns < 1 || *floodConns > 1024 {
		return errors.New("-c and -flood-c must be from 1 to 1024")
	}
	if *probeUser != "" {
		u, _, err := target(*targetURL, "", 0, "")
		if err != nil {
			return err
		}
		return printProbes(u, *probeUser, *password, *probes, *floodConns)
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
		return printAgainstHash(newSide(u.Host, requests, *conns), *hashSlots, *slice, *warmup, *duration)
	}
	if *flood != "" {
		fu, _, err := target(*flood, "", 0, "")
		if err != nil {
			return err
		}
		return printAgainstFlood(newSide(u.Host, requests, *conns), newFloodSide(fu, *floodConns), *slice, *warmup, *duration)
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
// password hashes: slots hashes at once (the server's hash slots), timed
// in this process with the same library, slots / the time each takes. It
// loads s in slices and, between them, times the hashes on the then idle
// machine, so that each slice is compared with the hash time measured just
// before and just after it: this machine's speed drifts within seconds.
// The first warmup is not counted.
func printAgainstHash(s *side, slots int, slice, warmup, duration time.Duration) error {
	defer s.close()
	const hashes = 5
	warm := time.Now().Add(warmup)
	s.run(warm, warm)
	before := medianHashTime(hashes, slots)
	total := result{statuses: map[int]int{}}
	var reachable, hashSum float64
	var cycles []float64
	for total.seconds < duration.Seconds() {
		r := s.runSlice(slice)
		after := medianHashTime(hashes, slots)
		ceiling := float64(slots) / ((before + after) / 2)
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
	return fmt.Sprintf("rps=%.1f ok=%d non2xx=%d errors=%d p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f seconds=%.2f statuses=%s",
		r.rps(), r.ok, r.non2xx, r.errs, pct(0.50), pct(0.99), pct(0.999), r.seconds, strings.Join(codes, ","))
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
	// render, when set, makes each request instead of requests.
	render   func(n int) []byte
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
	req := func() []byte {
		if w.render != nil {
			return w.render(w.n)
		}
		return w.requests[w.n%len(w.requests)]
	}()
	if _, err := w.conn.Write(req); err != nil {
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

// newFloodSide returns conns connections that send failed logins to u,
// each for a username and a client address never sent before: the
// usernames exist nowhere, and the addresses (X-Forwarded-For, believed
// from a trusted proxy) are spread over 10.0.0.0/8, so that neither the
// per-username nor the per-address limit stops them before the hash.
func newFloodSide(u *url.URL, conns int) *side {
	s := &side{}
	path := u.RequestURI()
	run := time.Now().UnixNano() % 1_000_000_000
	for i := range conns {
		w := &worker{host: u.Host}
		w.render = func(n int) []byte {
			id := n*conns + i
			body := fmt.Sprintf(`{"username":"flood-%d-%d","password":"not the password %d"}`, run, id, id)
			return []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.%d.%d.%d\r\nContent-Length: %d\r\n\r\n%s",
				path, u.Host, id>>16&255, id>>8&255, id&255, len(body), body))
		}
		s.workers = append(s.workers, w)
	}
	return s
}

// printAgainstFlood measures s during a flood of failed logins against s
// alone, in slices in the order A B B A, A being s with the flood. A flood
// slice ends once every login of it has its answer, so the logins waiting
// for a hash slot do not spill into the next slice. The first warmup of
// each is not counted. It prints the ratio of the throughputs and of the
// 99th percentiles, each side's result, and the flood's.
func printAgainstFlood(s, flood *side, slice, warmup, duration time.Duration) error {
	defer s.close()
	defer flood.close()
	// floodTotal gathers the flood's answers over the measured slices.
	var floodTotal result
	withFlood := func() result {
		var fr result
		var wg sync.WaitGroup
		wg.Go(func() { fr = flood.runSlice(slice) })
		r := s.runSlice(slice)
		wg.Wait()
		floodTotal.add(fr)
		return r
	}
	floodTotal = result{statuses: map[int]int{}}
	for spent := time.Duration(0); spent < warmup; spent += slice {
		withFlood()
		s.runSlice(slice)
	}
	floodTotal = result{statuses: map[int]int{}}
	ra, rb := result{statuses: map[int]int{}}, result{statuses: map[int]int{}}
	var cycles []float64
	for ra.seconds < duration.Seconds() {
		a1 := withFlood()
		b1, b2 := s.runSlice(slice), s.runSlice(slice)
		a2 := withFlood()
		cycles = append(cycles, float64(a1.ok+a2.ok)/float64(b1.ok+b2.ok))
		ra.add(a1)
		ra.add(a2)
		rb.add(b1)
		rb.add(b2)
	}
	if ra.ok == 0 || rb.ok == 0 {
		return fmt.Errorf("no successful request: %s; without the flood: %s", ra, rb)
	}
	floodTotal.seconds = ra.seconds
	shed := floodTotal.statuses[503]
	answered := floodTotal.ok + floodTotal.non2xx
	fmt.Printf("ratio=%.4f p99_ratio=%.4f %s\n", ra.rps()/rb.rps(), percentile(ra.latencies, 0.99)/percentile(rb.latencies, 0.99), spread(cycles))
	fmt.Println(ra)
	fmt.Println("vs:", rb)
	fmt.Printf("flood: login_rps=%.1f shed_rps=%.1f shed_ratio=%.4f %s\n", float64(answered-shed)/floodTotal.seconds,
		float64(shed)/floodTotal.seconds, float64(shed)/float64(max(answered, 1)), floodTotal)
	return nil
}

// percentile returns the p-th quantile of latencies in milliseconds.
func percentile(latencies []time.Duration, p float64) float64 {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}

// printProbes times logins one at a time over one connection: a known
// user with a wrong password (A) and an unknown username (B), in the
// order A B B A, n answered of each after 5 rounds not timed, first on the
// idle server and then during a flood of floodConns connections. It prints,
// for each phase and kind, the median and the 10th, 25th, 75th and 90th
// percentiles in ms: whether the answer's time tells the two apart.
func printProbes(u *url.URL, user, password string, n, floodConns int) error {
	if n < 30 || n > 10000 {
		return errors.New("-n must be from 30 to 10000")
	}
	path := u.RequestURI()
	loginReq := func(username, plain string) []byte {
		body := fmt.Sprintf(`{"username":%s,"password":%s}`, strconv.Quote(username), strconv.Quote(plain))
		return []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			path, u.Host, len(body), body))
	}
	w := &worker{host: u.Host}
	defer w.drop()
	probe := func(req []byte) (time.Duration, int, error) {
		if w.conn == nil {
			conn, err := net.DialTimeout("tcp", w.host, 5*time.Second)
			if err != nil {
				return 0, 0, err
			}
			w.conn, w.br = conn, bufio.NewReaderSize(conn, 32<<10)
		}
		_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
		w.requests, w.n = [][]byte{req}, 0
		start := time.Now()
		status, keep, err := w.roundTrip()
		took := time.Since(start)
		if err != nil || !keep {
			w.drop()
		}
		return took, status, err
	}
	// phase times n answered (401) logins of each kind. During a flood some
	// are refused 503 overloaded before any hash: those are counted apart
	// and sent again, up to 20 times n in all.
	phase := func(name string) error {
		var known, unknown []time.Duration
		shed := map[bool]int{}
		for i := 0; len(known) < n || len(unknown) < n; i++ {
			if i > 20*n {
				return fmt.Errorf("%s: fewer than %d logins of each kind answered in %d tries (%d and %d refused 503)",
					name, n, 2*i, shed[true], shed[false])
			}
			order := []bool{true, false}
			if i%2 == 1 {
				order = []bool{false, true}
			}
			for _, isKnown := range order {
				req := loginReq(fmt.Sprintf("probe-nobody-%d-%d", time.Now().UnixNano(), i), "a wrong password 1")
				if isKnown {
					req = loginReq(user, "a wrong password 1")
				}
				took, status, err := probe(req)
				switch {
				case err != nil:
					return err
				case status == 503:
					shed[isKnown]++
					continue
				case status != 401:
					return fmt.Errorf("%s: a probe answered %d, want 401 (is LOGIN_USER_FAILURES high enough?)", name, status)
				case i < 5:
					continue
				case isKnown && len(known) < n:
					known = append(known, took)
				case !isKnown && len(unknown) < n:
					unknown = append(unknown, took)
				}
			}
		}
		q := func(l []time.Duration) string {
			return fmt.Sprintf("p50_ms=%.3f p10_ms=%.3f p25_ms=%.3f p75_ms=%.3f p90_ms=%.3f", percentile(l, 0.5),
				percentile(l, 0.1), percentile(l, 0.25), percentile(l, 0.75), percentile(l, 0.9))
		}
		fmt.Printf("%s known_wrong_password: n=%d refused_503=%d %s\n", name, len(known), shed[true], q(known))
		fmt.Printf("%s unknown_username: n=%d refused_503=%d %s\n", name, len(unknown), shed[false], q(unknown))
		fmt.Printf("%s difference_of_medians_ms=%.3f\n", name, percentile(known, 0.5)-percentile(unknown, 0.5))
		return nil
	}
	if err := phase("idle"); err != nil {
		return err
	}
	flood := newFloodSide(u, floodConns)
	defer flood.close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				flood.runSlice(time.Second)
			}
		}
	})
	err := phase("flood")
	close(stop)
	wg.Wait()
	return err
}
