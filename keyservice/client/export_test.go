package client

import "time"

// SetReplicaClock sets the clock that times how long a failed replica is
// passed over (tests).
func SetReplicaClock(c *Client, now func() time.Time) { c.reps.now = now }

// SendsFast reports whether c sends with fasthttp (tests).
func SendsFast(c *Client) bool {
	_, fast := c.via.(*fastSender)
	return fast
}
