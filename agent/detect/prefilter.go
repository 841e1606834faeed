package detect

// prefilter finds, in one pass over a message, which of a set of literal
// keywords occur in it (Aho–Corasick, compiled to a DFA over byte classes).
// Every rule registers one keyword, so a benign line that contains none of
// them costs one table lookup per byte and no allocation, whatever the
// number of rules.
type prefilter struct {
	// class maps a byte to its column in delta; bytes that occur in no
	// keyword share class 0, which always leads back towards the root.
	class  [256]uint8
	nclass int
	// next is the transition table, indexed by row+class where row is a
	// state's number times nclass. Entries hold the next state's row, so the
	// hot loop does no multiplication; a negative entry (-row) marks a state
	// where keywords end, so the loop tests one sign per byte.
	next []int32
	outs [][]int // state -> keywords that end here (incl. via suffix links)
}

// step returns the row reached from row on byte b, and whether keywords end
// there (then p.outs[row/p.nclass] lists them).
func (p *prefilter) step(row int32, b byte) (int32, bool) {
	n := p.next[row+int32(p.class[b])]
	if n < 0 {
		return -n, true
	}
	return n, false
}

func newPrefilter(keywords []string) *prefilter {
	p := &prefilter{}
	// Byte classes: one per distinct byte used by a keyword, 0 for the rest.
	for _, k := range keywords {
		for i := 0; i < len(k); i++ {
			if p.class[k[i]] == 0 {
				p.nclass++
				p.class[k[i]] = uint8(p.nclass)
			}
		}
	}
	p.nclass++ // class 0

	// Trie.
	type node struct {
		next map[uint8]int32
		fail int32
		out  []int
	}
	nodes := []node{{next: map[uint8]int32{}}}
	for id, k := range keywords {
		s := int32(0)
		for i := 0; i < len(k); i++ {
			c := p.class[k[i]]
			nx, ok := nodes[s].next[c]
			if !ok {
				nodes = append(nodes, node{next: map[uint8]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, id)
	}

	// Breadth-first: failure links, then the full transition table, so that
	// scanning never follows a failure link at run time.
	n := len(nodes)
	delta := make([]int32, n*p.nclass) // state*nclass + class -> state
	p.outs = make([][]int, n)
	queue := make([]int32, 0, n)
	for c := 0; c < p.nclass; c++ {
		if nx, ok := nodes[0].next[uint8(c)]; ok {
			nodes[nx].fail = 0
			delta[c] = nx
			queue = append(queue, nx)
		}
	}
	p.outs[0] = nodes[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		// Outputs of the failure state are complete already (it is
		// shallower, so it was dequeued earlier).
		outs := append([]int(nil), nodes[s].out...)
		outs = append(outs, p.outs[nodes[s].fail]...)
		p.outs[s] = outs
		for c := 0; c < p.nclass; c++ {
			if nx, ok := nodes[s].next[uint8(c)]; ok {
				nodes[nx].fail = delta[int(nodes[s].fail)*p.nclass+c]
				delta[int(s)*p.nclass+c] = nx
				queue = append(queue, nx)
			} else {
				delta[int(s)*p.nclass+c] = delta[int(nodes[s].fail)*p.nclass+c]
			}
		}
	}
	p.next = make([]int32, len(delta))
	for i, st := range delta {
		row := st * int32(p.nclass)
		if len(p.outs[st]) > 0 {
			row = -row
		}
		p.next[i] = row
	}
	return p
}
