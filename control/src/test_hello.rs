//! The hello the control plane's tests send: a relay node's, of this
//! protocol version, with nothing optional.

use warren_proto::{Auth, Hello, Mode, PROTOCOL_VERSION};
use warren_wire::PublicKey;

/// `name`'s hello with key `public_key`, proving itself with `auth`.
pub(crate) fn hello(auth: Auth, name: &str, public_key: PublicKey) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        capabilities: Vec::new(),
        auth,
        name: name.to_owned(),
        public_key,
        mode: Mode::Relay,
        private_address: None,
        wg_port: 51820,
        machine: None,
    }
}
