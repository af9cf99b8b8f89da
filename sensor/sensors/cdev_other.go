//go:build !linux

package sensors

import (
	"errors"

	"sensord/sensor/dht22"
)

// cdevLine exists only on Linux; elsewhere openCdev explains why not.
type cdevLine struct{ dht22.EdgeLine }

func (l *cdevLine) Close() error { return nil }

func openCdev(pin string) (*cdevLine, error) {
	return nil, errors.New("sensors: cdev capture needs Linux's GPIO character device; use -sensor sim on this system")
}

func openPower(pin string) (Power, error) {
	return nil, errors.New("sensors: a power pin needs Linux's GPIO character device")
}
