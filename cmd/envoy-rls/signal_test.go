package main

import (
	"syscall"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

var hupSignal = syscall.SIGHUP

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
