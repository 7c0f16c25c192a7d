package secureagg

import "strconv"

// KeyContext returns the federation id that key epoch epoch of federation
// runs under: what Config.Federation is set to, and so what every message
// header, the common reference string and the sealed Shamir shares' HPKE info
// are bound to. Each epoch is a new key setup (new parties, new collective
// key), and binding it into every message keeps the messages of one epoch
// from being taken for those of another. Epoch 0 is the federation id itself,
// so a federation keyed before epochs existed is epoch 0 unchanged; epoch e > 0
// appends "#k" and e in decimal.
//
// The result of any federation id of 1 to 255 bytes fits a header at every
// epoch. A federation id that itself ends in "#k" and digits would collide with
// an epoch of a shorter id: configurations should not name federations so.
func KeyContext(federation string, epoch uint64) string {
	if epoch == 0 {
		return federation
	}
	return federation + "#k" + strconv.FormatUint(epoch, 10)
}
