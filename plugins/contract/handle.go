package contract

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// MarshalHandle encodes h for a checkpoint (the wire form of
// dcos.plugins.v1.TaskHandle). The host stores the bytes as they are and
// decodes them with UnmarshalHandle after a restart.
func MarshalHandle(h *TaskHandle) ([]byte, error) {
	if h == nil {
		return nil, fmt.Errorf("marshal task handle: nil handle")
	}
	b, err := proto.Marshal(handleToProto(h))
	if err != nil {
		return nil, fmt.Errorf("marshal task handle: %w", err)
	}
	return b, nil
}

// UnmarshalHandle decodes a checkpoint written by MarshalHandle. It checks
// only the encoding and that there is a version and a task ID; whether the
// driver can read the handle's Version is RecoverTask's to say.
func UnmarshalHandle(b []byte) (*TaskHandle, error) {
	var pb pluginsv1.TaskHandle
	if err := proto.Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("unmarshal task handle: %w", err)
	}
	h := handleFromProto(&pb)
	if h.Version == 0 {
		return nil, fmt.Errorf("unmarshal task handle: no version")
	}
	if h.Config == nil || h.Config.ID == "" {
		return nil, fmt.Errorf("unmarshal task handle: no task id")
	}
	return h, nil
}
