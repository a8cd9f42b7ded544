package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tarstore/tarstore/appliance/httpapi"
)

// Connection slots (SPEC §6: concurrent connections are bounded). A server
// serves at most ConnLimits.Max connections at once, and at most
// ConnLimits.PerIP of them from one client IP address, so that one client
// cannot take every slot. Beyond those, ConnLimits.Reserve more
// connections are accepted for the light routes only — /healthz,
// /v1/status and /metrics, which answer without waiting for the store's
// writers — so that a server whose slots are all taken (by stalled
// uploads, say, until their body deadline cuts them) still tells a
// monitor it is alive. A reserve connection serves one request and is
// closed; any other route on it is 503 overloaded with Retry-After. One
// address holds at most half the reserve (at least one). A connection
// that fits nowhere while the server has room for others (its address is
// at its limits) gets that 503 at once and is closed. When every slot and
// the reserve are taken, new connections wait in the kernel's backlog.
//
// Behind NAT, or QEMU's user networking (every host client appears as
// 10.0.2.2), clients share an address: raise PerIP (--max-conns-per-ip)
// there.

// ConnLimits bound the connections a server keeps open.
type ConnLimits struct {
	Max     int // connections served at once, all routes; at least 1
	PerIP   int // of those, from one IP address; 0 (or more than Max) = Max
	Reserve int // extra connections for the light routes only; 0 = none
}

// DefaultReserveConns is Serve's ConnLimits.Reserve.
const DefaultReserveConns = 8

// LightRoutes are the routes a reserve connection serves.
var LightRoutes = map[string]bool{"/healthz": true, "/v1/status": true, "/metrics": true}

// LimitListener returns a listener that holds at most n accepted
// connections open at once: Accept waits (leaving further clients in the
// kernel's backlog) until one of them is closed. Closing the listener wakes
// a waiting Accept, which returns net.ErrClosed. It is LimitConns with
// ConnLimits{Max: n}.
func LimitListener(l net.Listener, n int) net.Listener {
	return LimitConns(l, ConnLimits{Max: n})
}

// LimitConns returns a listener that applies lim (see "Connection slots"
// above): Accept returns connections that fit a slot or the reserve
// (IsReserve tells which), answers those that fit neither with 503 itself,
// and waits while every slot and the reserve are taken.
func LimitConns(l net.Listener, lim ConnLimits) net.Listener {
	lim.Max = max(lim.Max, 1)
	if lim.PerIP <= 0 || lim.PerIP > lim.Max {
		lim.PerIP = lim.Max
	}
	lim.Reserve = max(lim.Reserve, 0)
	return &limitListener{
		Listener:     l,
		lim:          lim,
		reservePerIP: max(lim.Reserve/2, 1),
		sem:          make(chan struct{}, lim.Max+lim.Reserve),
		done:         make(chan struct{}),
		byIP:         map[string]*ipConns{},
	}
}

type limitListener struct {
	net.Listener
	lim          ConnLimits
	reservePerIP int
	sem          chan struct{} // one token per open connection, slot or reserve
	done         chan struct{}
	closeOnce    sync.Once

	mu       sync.Mutex
	main     int // connections in slots
	reserved int // connections in the reserve
	byIP     map[string]*ipConns
}

// ipConns counts one address's connections.
type ipConns struct{ main, reserved int }

// ipOf is the address a connection's limits are counted by: its remote
// IP ("" when it has none, a unix socket say).
func ipOf(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		ip := ipOf(c)
		reserve, ok := l.admit(ip)
		if !ok {
			<-l.sem
			go refuse(c)
			continue
		}
		lc := &limitConn{Conn: c, reserve: reserve}
		lc.release = func() { l.leave(ip, reserve) }
		return lc, nil
	}
}

// admit finds a place for a connection from ip: a slot, else the reserve.
func (l *limitListener) admit(ip string) (reserve, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.byIP[ip]
	if n == nil {
		n = &ipConns{}
	}
	switch {
	case l.main < l.lim.Max && n.main < l.lim.PerIP:
		l.main++
		n.main++
	case l.reserved < l.lim.Reserve && n.reserved < l.reservePerIP:
		l.reserved++
		n.reserved++
		reserve = true
	default:
		return false, false
	}
	l.byIP[ip] = n
	return reserve, true
}

// leave frees the place of a connection from ip.
func (l *limitListener) leave(ip string, reserve bool) {
	l.mu.Lock()
	n := l.byIP[ip]
	if reserve {
		l.reserved--
		n.reserved--
	} else {
		l.main--
		n.main--
	}
	if n.main+n.reserved == 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
	<-l.sem
}

// refuseTimeout bounds the 503 written to a connection that has no place.
const refuseTimeout = time.Second

// refuse answers c with 503 overloaded, without reading its request, and
// closes it.
func refuse(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(refuseTimeout))
	body := overloadedBody("Too many connections from " + ipOf(c) + "; try again later")
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"+
		"%s: %s\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		httpapi.HeaderError, httpapi.CodeOverloaded, len(body), body)
}

// overloadedBody is the JSON error body of a 503 overloaded.
func overloadedBody(msg string) []byte {
	b, _ := json.Marshal(httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: httpapi.CodeOverloaded, Message: msg}})
	return append(b, '\n')
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	reserve bool
	once    sync.Once
	release func()
}

// Close frees the connection's place, then closes it: by the time the
// client sees the end of the connection, its place is free.
func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// IsReserve reports whether c is a reserve connection of a LimitConns
// listener, which may serve the light routes only.
func IsReserve(c net.Conn) bool {
	lc, ok := c.(*limitConn)
	return ok && lc.reserve
}

// reserveKey marks the context of a request on a reserve connection.
type reserveKey struct{}

// ConnContext is the http.Server's ConnContext for a LimitConns listener:
// it marks the requests of reserve connections for ReserveHandler.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if IsReserve(c) {
		return context.WithValue(ctx, reserveKey{}, true)
	}
	return ctx
}

// ReserveHandler serves h, except that on a reserve connection (see
// ConnContext) only the LightRoutes are served, each answer closing the
// connection, and any other request is 503 overloaded with Retry-After.
func ReserveHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(reserveKey{}) == nil {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if LightRoutes[r.URL.EscapedPath()] {
			h.ServeHTTP(w, r)
			return
		}
		body := overloadedBody("Every connection slot is taken; only /healthz, /v1/status and /metrics are served now; try again later")
		hdr := w.Header()
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Cache-Control", "no-store")
		hdr.Set(httpapi.HeaderError, httpapi.CodeOverloaded)
		hdr.Set("Retry-After", "1")
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(body)
	})
}
