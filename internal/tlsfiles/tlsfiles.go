// Package tlsfiles builds a server TLS configuration from certificate
// files and keeps it current: each new handshake first checks whether the
// files changed (size or modification time) and, if they did, loads them
// again, so that rotated certificates (a renewed Kubernetes Secret, say)
// take effect without a restart. A rotation that fails to load keeps the
// last good certificates and reports the error.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files name the PEM files of a server. CertFile and KeyFile are required;
// ClientCAFile, when set, turns on mutual TLS: clients must present a
// certificate signed by one of its CAs.
type Files struct {
	CertFile, KeyFile, ClientCAFile string
}

// Server keeps a server's certificates current. It is safe for concurrent
// use.
type Server struct {
	files   Files
	onError func(error)

	mu   sync.Mutex
	sig  [3]stamp
	conf *tls.Config
}

type stamp struct {
	size int64
	mod  time.Time
}

// NewServer loads files and returns a Server; onError (may be nil) hears
// of rotations that failed to load.
func NewServer(files Files, onError func(error)) (*Server, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("tlsfiles: a certificate and a key file are both required")
	}
	s := &Server{files: files, onError: onError}
	sig, err := s.stamps()
	if err != nil {
		return nil, err
	}
	conf, err := s.load()
	if err != nil {
		return nil, err
	}
	s.sig, s.conf = sig, conf
	return s, nil
}

// Config returns the tls.Config to serve with: it hands each handshake the
// current certificates.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current(), nil
		},
	}
}

// current returns the configuration for the files as they are now,
// reloading them when they changed.
func (s *Server) current() *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig, err := s.stamps()
	if err != nil || sig == s.sig {
		if err != nil && s.onError != nil {
			s.onError(err)
		}
		return s.conf
	}
	conf, err := s.load()
	if err != nil {
		if s.onError != nil {
			s.onError(err)
		}
		return s.conf
	}
	s.sig, s.conf = sig, conf
	return conf
}

func (s *Server) stamps() ([3]stamp, error) {
	var sig [3]stamp
	for i, f := range []string{s.files.CertFile, s.files.KeyFile, s.files.ClientCAFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return sig, fmt.Errorf("tlsfiles: %w", err)
		}
		sig[i] = stamp{fi.Size(), fi.ModTime()}
	}
	return sig, nil
}

func (s *Server) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsfiles: loading %s and %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	if s.files.ClientCAFile != "" {
		pem, err := os.ReadFile(s.files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsfiles: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsfiles: %s holds no PEM certificate", s.files.ClientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}
