package testservers

import (
	"errors"
	"testing"
)

func TestRedisStopStart(t *testing.T) {
	s := Redis(t)
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING succeeded on a stopped server")
	}
	s.Start()
	v, err := s.Do("GET", "k")
	if err != nil || v != nil {
		t.Fatalf("GET after restart = %v, %v; want nil (no persistence)", v, err)
	}
}

func TestRedisTLS(t *testing.T) {
	s := RedisTLS(t)
	if v, err := s.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING = %v, %v", v, err)
	}
	// Without the password the server refuses commands.
	conf, err := s.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dialRedis(s.Addr, conf, "", redisStartTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	var re RedisError
	if _, err := rc.do("GET", "k"); !errors.As(err, &re) {
		t.Fatalf("GET without AUTH: %v, want NOAUTH", err)
	}
}

func TestRedisCluster(t *testing.T) {
	c := RedisCluster(t)
	if len(c.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	n := c.Nodes[1]
	n.Stop()
	n.Start()
	c.WaitOK(t, redisStartTimeout)
}

func TestRedisSentinel(t *testing.T) {
	s := RedisSentinel(t)
	v, err := s.Sentinel.Do("SENTINEL", "MASTERS")
	if err != nil {
		t.Fatalf("SENTINEL MASTERS: %v", err)
	}
	if a, ok := v.([]any); !ok || len(a) != 1 {
		t.Fatalf("SENTINEL MASTERS = %v, want one master", v)
	}
}
