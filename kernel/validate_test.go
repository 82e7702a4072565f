package kernel

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestValidateAllocate(t *testing.T) {
	ok := func() *pb.AllocateRequest { return allocReq(0.5, 64, 1) }
	tests := []struct {
		name  string
		edit  func(r *pb.AllocateRequest)
		field string // "" means valid
	}{
		{"valid", func(*pb.AllocateRequest) {}, ""},
		{"no resources", func(r *pb.AllocateRequest) { r.Resources = nil }, "resources"},
		{"negative cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = -1 }, "resources.cpus"},
		{"NaN cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = math.NaN() }, "resources.cpus"},
		{"Inf cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = math.Inf(1) }, "resources.cpus"},
		{"zero cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = 0 }, "resources.cpus"},
		{"absurd memory", func(r *pb.AllocateRequest) { r.Resources.MemBytes = 1 << 62 }, "resources.mem_bytes"},
		{"zero memory", func(r *pb.AllocateRequest) { r.Resources.MemBytes = 0 }, "resources.mem_bytes"},
		{"negative disk", func(r *pb.AllocateRequest) { r.Resources.DiskBytes = -5 }, "resources.disk_bytes"},
		{"negative count", func(r *pb.AllocateRequest) { r.Count = -1 }, "count"},
		{"huge count", func(r *pb.AllocateRequest) { r.Count = MaxCount + 1 }, "count"},
		{"bad role", func(r *pb.AllocateRequest) { r.Role = "has space" }, "role"},
		{"constraint no op", func(r *pb.AllocateRequest) { r.Constraints = []*pb.Constraint{{Label: "zone", Values: []string{"a"}}} }, "constraints[0].op"},
		{"constraint no label", func(r *pb.AllocateRequest) {
			r.Constraints = []*pb.Constraint{{Op: pb.Constraint_OP_EQUALS, Values: []string{"a"}}}
		}, "constraints[0].label"},
		{"equals two values", func(r *pb.AllocateRequest) {
			r.Constraints = []*pb.Constraint{{Label: "z", Op: pb.Constraint_OP_EQUALS, Values: []string{"a", "b"}}}
		}, "constraints[0].values"},
		{"short lease", func(r *pb.AllocateRequest) { r.LeaseTtl = durationpb.New(1) }, "lease_ttl"},
		{"invalid lease", func(r *pb.AllocateRequest) { r.LeaseTtl = &durationpb.Duration{Seconds: 1, Nanos: -1} }, "lease_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			err := ValidateAllocate(r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Fatalf("err = %v (code %v), want InvalidArgument naming %q", err, CodeOf(err), tt.field)
			}
		})
	}
}

func TestValidateLaunch(t *testing.T) {
	tests := []struct {
		name  string
		r     *pb.LaunchRequest
		field string
	}{
		{"valid", &pb.LaunchRequest{AllocationId: "a-1", Command: "sh", Args: []string{"-c", "echo hi"}, Env: map[string]string{"A": "b"}}, ""},
		{"empty command", &pb.LaunchRequest{AllocationId: "a-1", Command: " "}, "command"},
		{"no allocation", &pb.LaunchRequest{Command: "true"}, "allocation_id"},
		{"NUL in arg", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Args: []string{"a\x00"}}, "args[0]"},
		{"bad env name", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Env: map[string]string{"A=B": "c"}}, "env"},
		{"oversized", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Args: []string{strings.Repeat("x", MaxTaskSpecBytes)}}, "args"},
		{"negative share", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Resources: &pb.Resources{Cpus: -1}}, "resources.cpus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLaunch(tt.r)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tt.field)
			}
		})
	}
}

// FuzzDecodeValidate feeds arbitrary bytes through the syscall decoders
// (protobuf and JSON, as the API receives them) and the validators. It
// must never panic, and whatever validates must be safe for the table:
// resources finite, positive and bounded.
func FuzzDecodeValidate(f *testing.F) {
	seeds := []proto.Message{
		allocReq(0.5, 64, 1),
		&pb.AllocateRequest{Resources: &pb.Resources{Cpus: math.NaN()}, Count: -3},
		&pb.LaunchRequest{AllocationId: "a-1", Command: "sh", Args: []string{"-c", "x"}},
		&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 2, MemBytes: 1 << 30}, Labels: map[string]string{"zone": "a"}},
		&pb.ReportTaskStatusRequest{TaskId: "t-1", AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING},
	}
	for _, s := range seeds {
		b, _ := proto.Marshal(s)
		f.Add(b, false)
		j, _ := protojson.Marshal(s)
		f.Add(j, true)
	}
	f.Add([]byte(`{"resources":{"cpus":"NaN","memBytes":"99999999999999999999"}}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		unmarshal := func(m proto.Message) error {
			if isJSON {
				return protojson.Unmarshal(b, m)
			}
			return proto.Unmarshal(b, m)
		}
		var a pb.AllocateRequest
		if unmarshal(&a) == nil && ValidateAllocate(&a) == nil {
			r := FromProto(a.GetResources())
			if r.MilliCPU <= 0 || r.Mem <= 0 || r.Disk < 0 || r.MilliCPU > MaxCPUs*1000 || r.Mem > MaxBytes || r.Disk > MaxBytes {
				t.Fatalf("validated allocate has unsafe resources %v", r)
			}
			if a.GetCount() < 0 || a.GetCount() > MaxCount {
				t.Fatalf("validated count %d", a.GetCount())
			}
		}
		var l pb.LaunchRequest
		if unmarshal(&l) == nil && ValidateLaunch(&l) == nil {
			if strings.TrimSpace(l.GetCommand()) == "" || l.GetAllocationId() == "" {
				t.Fatalf("validated launch without command or allocation: %v", &l)
			}
		}
		var g pb.RegisterAgentRequest
		if unmarshal(&g) == nil && ValidateRegister(&g) == nil {
			if r := FromProto(g.GetResources()); r.MilliCPU <= 0 || r.Mem <= 0 {
				t.Fatalf("validated agent with %v", r)
			}
		}
		var s pb.ReportTaskStatusRequest
		if unmarshal(&s) == nil && ValidateReport(&s) == nil && s.GetState() == pb.TaskState_TASK_STATE_PENDING {
			t.Fatal("validated a PENDING report")
		}
	})
}
