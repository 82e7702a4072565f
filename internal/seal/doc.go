// Package seal encrypts values at rest under the cluster's key-encryption
// key (KEK), in the envelope model of Kubernetes' KMS v2 encryption
// provider: a data-encryption key (DEK, AES-256-GCM) encrypts each value,
// and the DEK, wrapped by the KEK (AES-256-GCM too), travels with every
// sealed value, so that a value can be opened by any holder of the KEK
// and the KEK can be rotated by adding a new primary key to the keyring
// while the old ones still open what they sealed.
//
// The KEK lives in a file only its owner may read (mode 0600; see
// LoadKeyring), never in the store: a copy of etcd's data, a backup or a
// snapshot holds ciphertext only. Every kernel of a cluster needs the
// same file.
//
// It is not a secret store: it neither keeps values nor decides who may
// read them (the kernel does).
package seal
