package testservers

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// RedisError is an error reply of a Redis server, such as
// "ERR unknown command".
type RedisError string

// Error returns the reply's text.
func (e RedisError) Error() string { return string(e) }

// redisConn is a minimal RESP2 connection, enough to wait for servers, set
// up clusters and read INFO in tests without a client library.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialRedis connects to addr (over TLS when tlsConf is not nil) and
// authenticates with password when it is not empty.
func dialRedis(addr string, tlsConf *tls.Config, password string, timeout time.Duration) (*redisConn, error) {
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if tlsConf != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tlsConf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rc := &redisConn{c: c, r: bufio.NewReader(c)}
	if password != "" {
		if _, err := rc.do("AUTH", password); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return rc, nil
}

func (rc *redisConn) close() { _ = rc.c.Close() }

// do sends one command and reads its reply: a string for simple and bulk
// strings, an int64, a []any, nil, or a RedisError as the error.
func (rc *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		return nil, err
	}
	return readReply(rc.r)
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, RedisError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			v, err := readReply(r)
			var re RedisError
			if err != nil && !errors.As(err, &re) {
				return nil, err
			}
			if err != nil {
				v = re
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// infoField returns the value of field in the text of an INFO or CLUSTER
// INFO reply, and whether it is there.
func infoField(info, field string) (string, bool) {
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v, true
		}
	}
	return "", false
}
