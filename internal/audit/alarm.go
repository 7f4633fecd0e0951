package audit

import (
	"context"
	"log/slog"
)

// Appender is what RaiseAlarm writes to: a *Log, or a test double.
type Appender interface {
	Append(ctx context.Context, e Event) (Event, error)
}

// RaiseAlarm records an unusual-volume alarm about the request ev describes
// (client, actor, origin, resource): an EventAlarm in the trail and an ERROR
// log line starting "ALARM:", which monitoring pages on. A failed append is
// logged, not returned: the request has its own audit record, and whether
// it proceeds is decided by the caller, never by the alarm.
func RaiseAlarm(ctx context.Context, a Appender, log *slog.Logger, ev Event, why string) {
	al := alarmEvent(ev, why)
	log.Error("ALARM: unusual "+ev.Event+" activity", "client", ev.Client, "actor", ev.Actor, "why", why)
	if _, err := a.Append(ctx, al); err != nil {
		log.Error("audit append of alarm failed", "err", err)
	}
}

// alarmEvent is the EventAlarm about the request ev describes.
func alarmEvent(ev Event, why string) Event {
	return Event{Event: EventAlarm, Client: ev.Client, Actor: ev.Actor, Origin: ev.Origin, Resource: ev.Resource, Outcome: OutcomeFailure, Reason: why, Code: "alarm"}
}
