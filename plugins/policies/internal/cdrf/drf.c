// drf.c: the drf built-in's algorithm (plugins/policies/drf, with the
// feasibility stage of internal/feasible and the first-fit cursors of
// internal/rank) written in C against docs/policy-abi.md (version 2), to
// measure a non-Go guest of the same algorithm: it must decide exactly as
// the Go source does (TestCDRF_SameAsGo). Not a built-in; not built by CI.
//
// Build (clang and wasm-ld: Debian clang + lld), exports by export_name:
//   clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -o drf.wasm drf.c
//
// Memory: a bump allocator over linear memory after the data; dcos_alloc
// resets it and places the input first, dcos_place allocates its scratch
// and the decision after the input.
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned char u8;

extern unsigned char __heap_base;
static u32 heap_top;

static u32 ensure(u32 end) {
	u32 have = __builtin_wasm_memory_size(0) * 65536u;
	if (end <= have) return 1;
	return __builtin_wasm_memory_grow(0, (end - have + 65535u) >> 16) != (unsigned long)-1;
}

static void *bump(u32 n) {
	u32 p = (heap_top + 7u) & ~7u;
	if (!ensure(p + n)) __builtin_trap();
	heap_top = p + n;
	return (void *)p;
}

__attribute__((export_name("dcos_policy_abi_version"))) i32 abi_version(void) { return 2; }
__attribute__((export_name("dcos_policy_wants"))) i32 wants(void) { return 0; }

__attribute__((export_name("dcos_alloc"))) u32 dcos_alloc(i32 n) {
	heap_top = (u32)&__heap_base;
	if (n < 0) return 0;
	u32 p = (heap_top + 7u) & ~7u;
	if (!ensure(p + (u32)n)) return 0;
	heap_top = p + (u32)n;
	return p;
}

// The batch.
enum { HDR = 96, AGENT = 80, REQ = 56, ROLE = 80, ALLOC = 48, CONS = 24, LABEL = 16, REF = 8 };
static const u8 *in_agents, *in_reqs, *in_roles, *in_cons, *in_labels, *in_refs;
static u32 na, nreq, nroles;

typedef struct { i64 cpu, mem, disk, ports; } res;

static inline res load_res(const u8 *p) { return *(const res *)p; }
static inline int fits(const res *have, const res *need) {
	return need->cpu <= have->cpu && need->mem <= have->mem && need->disk <= have->disk && need->ports <= have->ports;
}
static inline u32 rd32(const u8 *p, u32 off) { return *(const u32 *)(p + off); }
static inline u64 ref_of(const u8 *p) { return *(const u64 *)p; } // (offset, length): equal iff equal strings

// Feasibility: constraint sets and shapes.
static i32 *set_of, *shape_of, *set_rep, *shape_set, *cursor;
static res *shape_res;
static i32 **set_agents, *set_len;
static signed char *never;
static u32 nsets, nshapes;

static int same_constraints(u32 ra, u32 rb) {
	const u8 *a = in_reqs + ra * REQ, *b = in_reqs + rb * REQ;
	u32 na_ = rd32(a, 48), nb_ = rd32(b, 48);
	if (na_ != nb_) return 0;
	const u8 *ca = in_cons + rd32(a, 44) * CONS, *cb = in_cons + rd32(b, 44) * CONS;
	for (u32 i = 0; i < na_; i++, ca += CONS, cb += CONS) {
		u32 nv = rd32(ca, 4);
		if (rd32(ca, 0) != rd32(cb, 0) || ref_of(ca + 8) != ref_of(cb + 8) || nv != rd32(cb, 4)) return 0;
		const u8 *va = in_refs + rd32(ca, 16) * REF, *vb = in_refs + rd32(cb, 16) * REF;
		for (u32 j = 0; j < nv; j++)
			if (ref_of(va + j * REF) != ref_of(vb + j * REF)) return 0;
	}
	return 1;
}

// label returns the value reference of agent a's label key, or 0.
static const u8 *label(const u8 *a, u64 key) {
	const u8 *l = in_labels + rd32(a, 72) * LABEL, *end = l + rd32(a, 76) * LABEL;
	for (; l < end; l += LABEL)
		if (ref_of(l) == key) return l + 8;
	return 0;
}

static int matches(const u8 *a, const u8 *r) {
	const u8 *c = in_cons + rd32(r, 44) * CONS, *end = c + rd32(r, 48) * CONS;
	for (; c < end; c += CONS) {
		u32 op = rd32(c, 0), nv = rd32(c, 4);
		const u8 *vals = in_refs + rd32(c, 16) * REF;
		const u8 *v = label(a, ref_of(c + 8));
		switch (op) {
		case 1:
			if (!v || nv == 0 || ref_of(v) != ref_of(vals)) return 0;
			break;
		case 2:
			if (v && nv > 0 && ref_of(v) == ref_of(vals)) return 0;
			break;
		case 3: {
			if (!v) return 0;
			int ok = 0;
			for (u32 j = 0; j < nv; j++)
				if (ref_of(v) == ref_of(vals + j * REF)) { ok = 1; break; }
			if (!ok) return 0;
			break;
		}
		default:
			return 0;
		}
	}
	return 1;
}

static void agents_of(u32 set) {
	if (set_agents[set]) return;
	i32 *list = bump(na * 4);
	u32 n = 0;
	if (set == 0) {
		for (u32 i = 0; i < na; i++) list[n++] = i;
	} else {
		const u8 *r = in_reqs + set_rep[set] * REQ;
		for (u32 i = 0; i < na; i++)
			if (matches(in_agents + i * AGENT, r)) list[n++] = i;
	}
	set_agents[set] = list;
	set_len[set] = n;
}

static void feasible_new(void) {
	set_of = bump(nreq * 4), shape_of = bump(nreq * 4);
	set_rep = bump((nreq + 1) * 4);
	set_rep[0] = -1;
	nsets = 1;
	for (u32 i = 0; i < nreq; i++) {
		const u8 *r = in_reqs + i * REQ;
		if (rd32(r, 48) == 0) { set_of[i] = 0; continue; }
		if (i > 0 && same_constraints(i, i - 1)) { set_of[i] = set_of[i - 1]; continue; }
		u32 s = 1;
		for (; s < nsets; s++)
			if (same_constraints(i, set_rep[s])) break;
		if (s == nsets) set_rep[nsets++] = i;
		set_of[i] = s;
	}
	shape_set = bump(nreq * 4), shape_res = bump(nreq * sizeof(res));
	nshapes = 0;
	for (u32 i = 0; i < nreq; i++) {
		res need = load_res(in_reqs + i * REQ);
		if (i > 0 && set_of[i] == set_of[i - 1]) {
			res prev = load_res(in_reqs + (i - 1) * REQ);
			if (prev.cpu == need.cpu && prev.mem == need.mem && prev.disk == need.disk && prev.ports == need.ports) {
				shape_of[i] = shape_of[i - 1];
				continue;
			}
		}
		u32 k = 0;
		for (; k < nshapes; k++)
			if (shape_set[k] == set_of[i] && shape_res[k].cpu == need.cpu && shape_res[k].mem == need.mem &&
			    shape_res[k].disk == need.disk && shape_res[k].ports == need.ports) break;
		if (k == nshapes) { shape_set[k] = set_of[i]; shape_res[k] = need; nshapes++; }
		shape_of[i] = k;
	}
	set_agents = bump(nsets * sizeof(i32 *));
	set_len = bump(nsets * 4);
	for (u32 s = 0; s < nsets; s++) set_agents[s] = 0;
	never = bump(nshapes);
	cursor = bump(nshapes * 4);
	for (u32 k = 0; k < nshapes; k++) never[k] = 0, cursor[k] = 0;
}

static int is_never(u32 q) {
	u32 k = shape_of[q];
	if (never[k]) return never[k] == 2;
	res need = shape_res[k];
	u32 set = set_of[q];
	agents_of(set);
	int nv = 1;
	for (i32 i = 0; i < set_len[set]; i++) {
		res t = load_res(in_agents + set_agents[set][i] * AGENT);
		if (fits(&t, &need)) { nv = 0; break; }
	}
	never[k] = nv ? 2 : 1;
	return nv;
}

// The role heap: min by (key, index).
static u32 *heap, *pos, hn;
static double *key;
static inline int hless(u32 a, u32 b) { return key[a] != key[b] ? key[a] < key[b] : a < b; }
static void hswap(u32 i, u32 j) {
	u32 t = heap[i]; heap[i] = heap[j]; heap[j] = t;
	pos[heap[i]] = i + 1, pos[heap[j]] = j + 1;
}
static int hdown(u32 i) {
	u32 start = i;
	for (;;) {
		u32 l = 2 * i + 1;
		if (l >= hn) break;
		u32 m = l;
		if (l + 1 < hn && hless(heap[l + 1], heap[l])) m = l + 1;
		if (!hless(heap[m], heap[i])) break;
		hswap(i, m);
		i = m;
	}
	return i > start;
}
static void hup(u32 i) {
	while (i > 0) {
		u32 p = (i - 1) / 2;
		if (!hless(heap[i], heap[p])) return;
		hswap(i, p);
		i = p;
	}
}

static double inverse(i64 t) { return t <= 0 ? 0 : 1 / (double)t; }

__attribute__((export_name("dcos_place"))) u64 dcos_place(u32 ptr, u32 len) {
	const u8 *in = (const u8 *)ptr;
	na = rd32(in, 16), nreq = rd32(in, 20), nroles = rd32(in, 24);
	u32 nalloc = rd32(in, 28);
	in_agents = in + HDR;
	in_reqs = in_agents + na * AGENT;
	in_roles = in_reqs + nreq * REQ;
	in_cons = in_roles + nroles * ROLE + nalloc * ALLOC;
	in_labels = in_cons + rd32(in, 32) * CONS;
	in_refs = in_labels + rd32(in, 40) * LABEL;

	u8 *out = bump(24 + nreq * 8 + nreq * 8);
	u32 *pl = (u32 *)(out + 24);
	u32 *un = bump(nreq * 8);
	u32 np = 0, nu = 0;

	feasible_new();
	res *free = bump(na * sizeof(res));
	res total = {0, 0, 0, 0};
	for (u32 i = 0; i < na; i++) {
		const u8 *a = in_agents + i * AGENT;
		free[i] = load_res(a + 32);
		res t = load_res(a);
		total.cpu += t.cpu, total.mem += t.mem, total.disk += t.disk, total.ports += t.ports;
	}
	double inv0 = inverse(total.cpu), inv1 = inverse(total.mem);

	u32 nr = nroles + 1;
	res *usage = bump(nr * sizeof(res)), *quota = bump(nr * sizeof(res));
	double *weight = bump(nr * 8);
	for (u32 i = 0; i < nroles; i++) {
		const u8 *r = in_roles + i * ROLE;
		usage[i] = load_res(r + 16), quota[i] = load_res(r + 48);
		double w = *(const double *)(r + 8);
		weight[i] = (w > 0 && w != __builtin_inf()) ? w : 1;
	}
	usage[nr - 1] = load_res(in + 64), quota[nr - 1] = (res){0, 0, 0, 0}, weight[nr - 1] = 1;

	i32 *start = bump((nr + 1) * 4), *next = bump(nr * 4), *queue = bump(nreq * 4);
	for (u32 r = 0; r <= nr; r++) start[r] = 0;
	for (u32 i = 0; i < nreq; i++) {
		u32 role = rd32(in_reqs + i * REQ, 36);
		start[(role == 0xffffffffu ? nr - 1 : role) + 1]++;
	}
	for (u32 r = 0; r < nr; r++) start[r + 1] += start[r];
	for (u32 r = 0; r < nr; r++) next[r] = start[r];
	for (u32 i = 0; i < nreq; i++) {
		u32 role = rd32(in_reqs + i * REQ, 36);
		u32 r = role == 0xffffffffu ? nr - 1 : role;
		queue[next[r]++] = i;
	}
	for (u32 r = 0; r < nr; r++) next[r] = start[r];

	heap = bump(nr * 4), pos = bump(nr * 4), key = bump(nr * 8), hn = 0;
	for (u32 r = 0; r < nr; r++) {
		pos[r] = 0;
		if (start[r] < start[r + 1]) {
			double a = (double)usage[r].cpu * inv0, b = (double)usage[r].mem * inv1;
			key[r] = (a > b ? a : b) / weight[r];
			heap[hn++] = r;
			pos[r] = hn;
		}
	}
	for (i32 i = (i32)hn / 2 - 1; i >= 0; i--) hdown(i);

	while (hn > 0) {
		u32 r = heap[0];
		u32 q = queue[next[r]++];
		res need = load_res(in_reqs + q * REQ);
		u32 set = set_of[q];
		if (is_never(q)) {
			un[2 * nu] = q, un[2 * nu + 1] = 2, nu++;
		} else {
			res u = usage[r], *qt = &quota[r];
			u.cpu += need.cpu, u.mem += need.mem, u.disk += need.disk, u.ports += need.ports;
			if ((qt->cpu && u.cpu > qt->cpu) || (qt->mem && u.mem > qt->mem) || (qt->disk && u.disk > qt->disk) ||
			    (qt->ports && u.ports > qt->ports)) {
				un[2 * nu] = q, un[2 * nu + 1] = 1, nu++;
			} else {
				agents_of(set);
				u32 k = shape_of[q];
				i32 *list = set_agents[set], n = set_len[set], i = cursor[k];
				while (i < n && !fits(&free[list[i]], &need)) i++;
				cursor[k] = i;
				if (i == n) {
					un[2 * nu] = q, un[2 * nu + 1] = 1, nu++;
				} else {
					u32 a = list[i];
					pl[2 * np] = q, pl[2 * np + 1] = a, np++;
					free[a].cpu -= need.cpu, free[a].mem -= need.mem, free[a].disk -= need.disk, free[a].ports -= need.ports;
					usage[r] = u;
					double x = (double)u.cpu * inv0, y = (double)u.mem * inv1;
					key[r] = (x > y ? x : y) / weight[r];
				}
			}
		}
		if (next[r] == start[r + 1]) {
			u32 i = pos[r] - 1, last = hn - 1;
			if (i != last) hswap(i, last);
			hn--;
			pos[r] = 0;
			if (i != last && !hdown(i)) hup(i);
		} else {
			u32 i = pos[r] - 1;
			if (!hdown(i)) hup(i);
		}
	}
	u32 *o = (u32 *)out;
	o[0] = 0x324f4344, o[1] = 0, o[2] = np, o[3] = 0, o[4] = nu, o[5] = 0;
	u32 *up = pl + 2 * np;
	for (u32 i = 0; i < 2 * nu; i++) up[i] = un[i];
	(void)len;
	return (u64)(u32)out << 32 | (24 + 8 * np + 8 * nu);
}
