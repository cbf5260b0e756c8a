package main

import "fmt"

// startWebReplicas runs n `carebridge web` processes (the patient pages alone) on the
// bridge's config and database, for the secure chat phase to spread its patients over
// (PostgreSQL only: replicas share the database). They stop with the bench.
func (s *system) startWebReplicas(t *benchTB, n int) error {
	if n == 0 {
		return nil
	}
	if s.db.Type != "postgres" {
		return fmt.Errorf("web replicas need PostgreSQL, not %s", s.db.Type)
	}
	for range n {
		w := s.br.StartWeb(t)
		s.webs = append(s.webs, w.URL())
		s.webPids = append(s.webPids, w.Pid())
	}
	note("[%s] secure chat pages on %d web replicas", s.kind, n)
	return nil
}

// pageBase is where patient i opens the secure chat: the bridge, or one of the web
// replicas (each patient always the same one, as a sticky load balancer would).
func (s *system) pageBase(i int) string {
	if len(s.webs) == 0 {
		return s.br.URL()
	}
	return s.webs[i%len(s.webs)]
}
