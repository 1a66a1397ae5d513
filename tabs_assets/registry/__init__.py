"""The registered configs and studies: admission checks, records on disk, registration, what they
use, unregister and gc."""
